"""The bench's scripted calls and their caller audio.

Kinds of line:

- ``turn``: the caller says something (a question, "Yeah.", dictated digits) and waits for the
  reply to finish.
- ``pause``: the first part of an utterance; the caller pauses ``pause_after_s`` and goes on.
- ``barge``: spoken ``barge_after_s`` after the agent's reply starts, over it; should stop it.
  With ``continues`` the caller goes on after ``pause_after_s`` ("Wait, | can you ...").
- ``backchannel``: "uh-huh", "right" over the agent's reply; must not interrupt it.
- ``dtmf``: keypad digits (``#`` ends an entry); the caller waits for the reply.

Voices: ``piper`` (voiceagent's bundled voice), ``espeak:<voice>`` (espeak-ng, robotic, with
accents), ``human`` (Debian's Asterisk phone prompts, one real speaker, joined from ``parts``:
prompt names and gaps in seconds). Every line goes through 8 kHz μ-law and is trimmed of
leading and trailing silence, so a line's end is the caller's end of speech.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from bench.fakes.phone_speech import asterisk_line, dictated_digits, espeak_line, trim_silence
from voiceagent.emulator.script import CallerLine
from voiceagent.settings import Settings

RATE = 8000


@dataclass(frozen=True)
class BenchLine:
    """One caller line of a scripted call."""

    text: str
    kind: str = "turn"
    voice: str = "piper"
    parts: tuple[str | float, ...] = ()  # human lines: Asterisk prompts and gaps
    dtmf: str = ""
    continues: bool = False  # the utterance goes on in the next line after pause_after_s
    pause_after_s: float = 0.8
    barge_after_s: float = 1.0
    pcm8k: bytes = b""

    @property
    def duration_s(self) -> float:
        """Length of the (trimmed) audio."""
        return len(self.pcm8k) / 2 / RATE

    @property
    def mid_utterance(self) -> bool:
        """The caller has not finished: the next line goes on after a short pause."""
        return self.kind == "pause" or self.continues

    @property
    def over_agent(self) -> bool:
        """Spoken over the agent's reply."""
        return self.kind in ("barge", "backchannel")

    def caller_line(self) -> CallerLine:
        """The emulator's line."""
        return CallerLine(
            pcm8k=self.pcm8k,
            pause_after_s=self.pause_after_s,
            text=self.text,
            dtmf=self.dtmf,
            start_after_agent_audio_s=self.barge_after_s if self.over_agent else None,
            wait_for_reply=not self.mid_utterance,
        )


def _l(text: str, kind: str = "turn", **kw) -> BenchLine:
    return BenchLine(text=text, kind=kind, **kw)


def _human(text: str, parts: list[str | float], kind: str = "turn", **kw) -> BenchLine:
    return BenchLine(text=text, kind=kind, voice="human", parts=tuple(parts), **kw)


def _keys(digits: str) -> BenchLine:
    return BenchLine(text=f"[presses {digits}]", kind="dtmf", voice="", dtmf=digits)


_SCOT = "espeak:en-gb-scotland"
_US_F = "espeak:en-us+f3"

CALL_SCRIPTS: list[tuple[str, list[BenchLine]]] = [
    (
        "booking+barge-in",
        [
            _l("Hi, I'd like to book a teeth cleaning, please."),
            _l("Do you have anything open next Tuesday afternoon?"),
            _l("No no, stop, I meant the morning.", "barge", barge_after_s=1.5),
            _l("Yeah."),
            _l("Thanks, that's all for today. Goodbye!"),
        ],
    ),
    (
        "human+digits",
        [
            _human("Hello.", ["hello"]),
            _human(
                "The number I have is 5 5 5, 0 1 2 3.",
                ["vm-num-i-have", 0.4, *dictated_digits(["555", "0123"])],
            ),
            _human("No.", ["vm-no"]),
            _human("Thank you.", ["auth-thankyou"]),
            _human("Goodbye!", ["goodbye"]),
        ],
    ),
    (
        "pricing+backchannel",
        [
            _l("How much does a cleaning cost without insurance?"),
            _l("Tell me about your whitening options."),
            _l("Uh-huh.", "backchannel", barge_after_s=1.2),
            _l("I'd like to book a cleaning for my son and", "pause", pause_after_s=0.7),
            _l("my daughter on the same day."),
            _l("Yeah, that works.", voice=_US_F),
        ],
    ),
    (
        "keypad+dictation",
        [
            _l("I want to check on my appointment.", voice=_US_F),
            _l("Okay.", "backchannel", barge_after_s=1.2),
            _keys("1"),
            _l("Um, my number is", "pause", pause_after_s=0.9),
            _l("five five five, one two three four."),
            _keys("42#"),
            _l("Okay, thanks.", voice=_US_F),
        ],
    ),
    (
        "backchannels+wait",
        [
            _l("What time do you close on Fridays?", voice=_SCOT),
            _l("Right.", "backchannel", voice=_SCOT, barge_after_s=1.0),
            _l("Can you explain what the new patient visit includes?"),
            _l("Wait,", "barge", barge_after_s=2.0, continues=True, pause_after_s=0.5),
            _l("can you make it Wednesday instead?"),
            _l("Great, thank you so much. Goodbye!", voice=_SCOT),
        ],
    ),
]


def prepare_lines(
    settings: Settings, scripts: list[tuple[str, list[BenchLine]]]
) -> list[tuple[str, list[BenchLine]]]:
    """Make every line's audio (cached); blocking, run it in a thread.

    Raises:
        voiceagent.services.local.weights.WeightsError: the Piper voice is not installed.
        bench.fakes.phone_speech.SpeechUnavailable: espeak-ng or the Asterisk prompts are
            not installed.
    """
    cache = Path(settings.local.cache_dir) / "bench"
    audio = _piper_audio(
        settings, sorted({ln.text for _, ls in scripts for ln in ls if ln.voice == "piper"}), cache
    )
    out = []
    for name, lines in scripts:
        made = []
        for line in lines:
            if line.voice == "piper":
                pcm = audio[line.text]
            elif line.voice.startswith("espeak:"):
                pcm = espeak_line(line.text, cache, voice=line.voice.split(":", 1)[1])
            elif line.voice == "human":
                pcm = trim_silence(asterisk_line(line.parts))
            else:
                pcm = b""  # keypad only
            made.append(replace(line, pcm8k=pcm))
        out.append((name, made))
    return out


def _piper_audio(settings: Settings, texts: list[str], cache: Path) -> dict[str, bytes]:
    if not texts:
        return {}
    from piper import PiperVoice

    from voiceagent.emulator.audio import load_wav_pcm8k
    from voiceagent.emulator.voice import synthesize_texts
    from voiceagent.services.local.weights import resolve_piper_voice

    model, config = resolve_piper_voice(settings.local)
    voice = PiperVoice.load(str(model), config_path=str(config))
    wavs = synthesize_texts(voice, texts, cache)
    return {
        text: trim_silence(load_wav_pcm8k(path)) for text, path in zip(texts, wavs, strict=True)
    }
