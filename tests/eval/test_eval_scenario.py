"""Scenario files: a realistic call parses; every mistake names the file, call, line and field."""

from pathlib import Path

import pytest

from voiceagent.eval.scenario import LineKind, Pattern, ScenarioError, load_scenarios

GOOD = """
[defaults]
pause_after_s = 0.9
[defaults.expect]
within_ms = 2000
max_wer = 0.25

[[call]]
name = "booking"
description = "books a cleaning"
greeting = { contains = ["Bright Smile"], interrupted = false }

[[call.line]]
say = "I'd like to book a cleaning for next Tuesday,"
continues = true
pause_after_s = 0.6
expect = { no_reply = true }

[[call.line]]
say = "sometime in the afternoon."
expect = { contains_any = ["2 pm", "/\\\\b(4|four)\\\\b/"], not_contains = ["Saturday"] }

[[call.line]]
say = "Wait, how much is it?"
barge_in_after_s = 1.5
expect = { within_ms = 3000 }

[[call.line]]
say = "Uh-huh."
backchannel_after_s = 0.8
expect = { committed = false }

[[call.line]]
audio = "bye.wav"
dtmf = "1#"
"""


def write(folder: Path, text: str, name: str = "calls.toml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def only_error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ScenarioError) as caught:
        load_scenarios([write(tmp_path, text)])
    return str(caught.value)


def test_a_booking_call_with_a_pause_a_barge_in_and_a_backchannel_parses(tmp_path):
    (tmp_path / "bye.wav").write_bytes(b"RIFF")  # only its existence is checked here
    (call,) = load_scenarios([write(tmp_path, GOOD)])
    assert call.name == "booking" and call.description == "books a cleaning"
    assert [line.kind for line in call.lines] == [
        LineKind.CONTINUES,
        LineKind.TURN,
        LineKind.BARGE_IN,
        LineKind.BACKCHANNEL,
        LineKind.TURN,
    ]
    pause, afternoon, barge, backchannel, bye = call.lines
    assert pause.pause_after_s == 0.6 and afternoon.pause_after_s == 0.9  # the file's default
    assert pause.expect.no_reply is True
    assert pause.expect.within_ms is None  # defaults only reach lines that end a turn
    assert afternoon.expect.within_ms == 2000 and afternoon.expect.max_wer == 0.25
    assert barge.expect.within_ms == 3000  # the line's own limit wins
    assert barge.over_agent_after_s == 1.5 and backchannel.over_agent_after_s == 0.8
    assert backchannel.expect.committed is False and backchannel.expect.max_wer is None
    assert bye.audio == tmp_path / "bye.wav" and bye.dtmf == "1#" and bye.say == ""
    assert bye.expect.max_wer is None  # no words to compare with
    assert bye.label == "bye.wav"
    assert call.greeting is not None and call.greeting.interrupted is False


def test_patterns_match_whole_words_case_insensitively_or_as_regex():
    assert Pattern.parse("main street").found_in("We are at 42 Main  Street.")
    assert not Pattern.parse("main").found_in("the mainstreet office")
    assert Pattern.parse("3").found_in("we close at 3:00 pm")
    assert not Pattern.parse("3").found_in("call 555-1234")
    assert Pattern.parse("/\\b(120|one hundred twenty)\\b/").found_in("It costs 120 dollars.")


def test_the_shipped_receptionist_scenarios_load():
    calls = load_scenarios([Path(__file__).parents[2] / "evals"])
    assert len(calls) >= 30
    kinds = {line.kind for call in calls for line in call.lines}
    assert kinds == set(LineKind)
    categories = {call.category for call in calls}
    assert categories == {
        "booking",
        "rescheduling",
        "questions",
        "hesitant",
        "interrupters",
        "backchannels",
        "dtmf",
        "silence",
        "noise",
        "tools",
    }
    assert sum(1 for call in calls for line in call.lines if line.clips) >= 6  # human voices


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "[[call]]\nname='x'\n[[call.line]]\nsay='hi'\nexpect={within_ms='fast'}\n",
            "calls.toml: call 'x': line 1: expect.within_ms: expected a number > 0, got str 'fast'",
        ),
        (
            "[[call]]\nname='x'\n[[call.line]]\nsay='hi'\nexpect={contian=['a']}\n",
            "call 'x': line 1: expect.contian: unknown field",
        ),
        (
            "[[call]]\nname='x'\n[[call.line]]\npause_after_s=1\n",
            "call 'x': line 1: say: missing: a line needs `say`",
        ),
        (
            "[[call]]\nname='x'\n[[call.line]]\nsay='a'\n[[call.line]]\nsay='b'\ncontinues=true\n",
            "call 'x': line 2: continues: the last line cannot continue",
        ),
        (
            "[[call]]\nname='x'\n[[call.line]]\nsay='a'\n[[call.line]]\nsay='uh-huh'\n"
            "backchannel_after_s=1\nexpect={contains=['ok']}\n",
            "line 2: expect.contains: a backchannel gets no reply of its own",
        ),
        (
            "[[call]]\nname='x'\n[[call.line]]\nsay='a,'\ncontinues=true\nexpect={max_wer=0.2}\n"
            "[[call.line]]\nsay='b'\n",
            "line 1: expect.max_wer: this line continues after a pause",
        ),
        (
            "[[call]]\nname='x'\n[[call.line]]\nsay='a'\nexpect={contains=['/(unclosed/']}\n",
            "line 1: expect.contains[0]: bad pattern '/(unclosed/'",
        ),
        (
            "[[call]]\nname='x'\n[[call.line]]\nsay='a'\nbarge_in_after_s=-1\n",
            "line 1: barge_in_after_s: expected a number ≥ 0, got int -1",
        ),
        (
            "[[call]]\nname='x'\n[[call.line]]\naudio='missing.wav'\n",
            "line 1: audio: no such WAV file",
        ),
        (
            "[[call]]\nname='x'\n[[call.line]]\naudio='{wav}'\nexpect={max_wer=0.1}\n",
            "line 1: expect.max_wer: needs `say`",
        ),
        (
            "[[call]]\nname='x'\n[[call.line]]\nsay='a'\ndtmf='12x'\n",
            "line 1: dtmf: expected keypad digits",
        ),
        (
            "[[call]]\nname='x'\ngreeting={within_ms=100}\n[[call.line]]\nsay='a'\n",
            "call 'x': greeting.within_ms: unknown field",
        ),
        ("[[call]]\ndescription='no name'\n[[call.line]]\nsay='a'\n", "call 1: name: missing"),
        ("[[call]]\nname='x'\n", "call 'x': line: no [[call.line]] tables"),
        (
            "[defaults]\npause=1\n[[call]]\nname='x'\n[[call.line]]\nsay='a'\n",
            "calls.toml: defaults.pause: unknown field",
        ),
        ("title = 'calls'\n", "calls.toml: title: unknown field"),
        (
            "[[call]]\nname='x'\ncondition='traffic'\n[[call.line]]\nsay='a'\n",
            "call 'x': condition: unknown condition 'traffic'",
        ),
        (
            "[conditions.loud]\nnoise='office'\nsnr=3\n[[call]]\nname='x'\n[[call.line]]\n"
            "say='a'\n",
            "calls.toml: conditions.loud: snr: unknown field",
        ),
        (
            "[[call]]\nname='x'\n[[call.line]]\naudio='asterisk:../../etc/passwd'\n",
            "line 1: audio: 'asterisk:../../etc/passwd': not an Asterisk prompt name",
        ),
        (
            "[[call]]\nname='x'\n[[call.line]]\naudio=['asterisk:hello', 'hello.wav']\n",
            "line 1: audio[1]: expected asterisk:NAME, got str 'hello.wav'",
        ),
        ("[[call]]\nname = \n", "calls.toml: not valid TOML"),
    ],
)
def test_a_bad_file_gets_an_error_naming_the_field(tmp_path, text, expected):
    (tmp_path / "there.wav").write_bytes(b"RIFF")
    message = only_error(tmp_path, text.replace("{wav}", "there.wav"))
    assert expected in message
    assert str(tmp_path / "calls.toml") in message


def test_two_calls_with_one_name_are_refused(tmp_path):
    call = "[[call]]\nname='hours'\n[[call.line]]\nsay='a'\n"
    first = write(tmp_path, call, "a.toml")
    second = write(tmp_path, call, "b.toml")
    with pytest.raises(ScenarioError, match=r"b\.toml: call 'hours': name: already used .*a\.toml"):
        load_scenarios([first, second])


def test_a_missing_file_or_an_empty_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ScenarioError, match="nope.toml: cannot read"):
        load_scenarios([tmp_path / "nope.toml"])
    with pytest.raises(ScenarioError, match="no \\*.toml scenario files"):
        load_scenarios([tmp_path])


def test_human_recordings_conditions_and_categories_parse(tmp_path):
    if not Path("/usr/share/asterisk/sounds/en/hello.wav").exists():
        pytest.skip("Debian's asterisk-core-sounds-en-wav is not installed")
    (tmp_path / "calls.toml").write_text(
        """
[conditions.car]
noise = "street"
snr_db = 5

[[call]]
name = "number"
category = "hesitant"
condition = "car"

[[call.line]]
audio = ["asterisk:telephone-number", "asterisk:digits/5", "asterisk:digits/0"]
expect = { max_wer = 0.2 }

[[call]]
name = "hello"
condition = "office:snr_db=20"

[[call.line]]
audio = "asterisk:hello"
say = "Hello there."
"""
    )
    number, hello = load_scenarios([tmp_path / "calls.toml"])
    (line,) = number.lines
    assert line.clips == ("asterisk:telephone-number", "asterisk:digits/5", "asterisk:digits/0")
    assert line.say == "Telephone number. 5 0" and line.expect.max_wer == 0.2
    assert not line.synthesized and line.audio is None
    assert number.category == "hesitant"
    assert (number.condition.name, number.condition.noise, number.condition.snr_db) == (
        "car",
        "street",
        5,
    )
    assert hello.lines[0].say == "Hello there."  # given words win over the transcript
    assert (hello.condition.noise, hello.condition.snr_db) == ("office", 20.0)
