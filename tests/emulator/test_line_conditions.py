"""Phone-line conditions: noise at an SNR, a speakerphone's echo, a quiet line, lost and late
media — on the caller's side of the call, as a server would receive them."""

from __future__ import annotations

import base64
from collections import Counter

import numpy as np
import pytest
from emulator_fakes import FakeAgentServer, rms, tone_pcm8k

from voiceagent.emulator.audio import ulaw_decode, ulaw_encode
from voiceagent.emulator.caller import CallerEmulator
from voiceagent.emulator.conditions import BUILTIN, LineCondition, parse_condition
from voiceagent.emulator.line import LinkLoss, PhoneLine, speech_rms
from voiceagent.emulator.noise import noise_loop
from voiceagent.emulator.script import CallerLine

SILENT = bytes((0xFF,)) * 160


def db(ratio: float) -> float:
    return 20 * np.log10(ratio)


def test_a_condition_is_named_or_spelled_out_and_wrong_ones_are_refused():
    assert parse_condition("office") is BUILTIN["office"]
    street = parse_condition("street:snr_db=5")
    assert (street.noise, street.snr_db, street.name) == ("street", 5.0, "street:snr_db=5")
    custom = parse_condition("noise=babble,snr_db=10,jitter_ms=30")
    assert (custom.noise, custom.snr_db, custom.jitter_ms) == ("babble", 10.0, 30.0)
    assert custom.describe() == "babble noise at 10 dB SNR, jitter 30 ms"
    for bad, why in (
        ("traffic", "unknown condition 'traffic'"),
        ("noise=rain", "noise: 'rain' is not one of office, street, babble"),
        ("loss=1.5", "loss: 1.5 is not within"),
        ("office:snr=3", "'snr=3': expected key=value"),
        ("voice=festival", "voice: 'festival' is not piper"),
    ):
        with pytest.raises(ValueError, match=why):
            parse_condition(bad)
    both = BUILTIN["speakerphone"].over(BUILTIN["office"])
    assert both.name == "office+speakerphone"
    assert (both.noise, both.echo_delay_ms) == ("office", 150.0)
    assert LineCondition().over(BUILTIN["street"]) is BUILTIN["street"]


@pytest.mark.parametrize("kind", ["office", "street", "babble"])
def test_each_noise_is_a_repeatable_loop_at_unit_level(kind):
    loop = noise_loop(kind, seed=3)
    assert loop.size == 30 * 8000
    assert np.sqrt(np.mean(loop**2)) == pytest.approx(1.0, rel=1e-3)
    assert np.array_equal(loop, noise_loop(kind, seed=3))
    assert not np.array_equal(loop, noise_loop(kind, seed=4))


@pytest.mark.parametrize("snr_db", [5.0, 15.0])
def test_noise_is_mixed_at_its_signal_to_noise_ratio_all_call_long(snr_db):
    speech = tone_pcm8k(1.0, 300.0, amplitude=6000.0)
    level = speech_rms([speech])
    line = PhoneLine(LineCondition(noise="street", snr_db=snr_db), level)
    quiet = b"".join(line.carry(SILENT, 0.02 * (n + 1)) for n in range(250))  # 5 s, no speech
    noise_level = rms(ulaw_decode(quiet))
    assert db(level / noise_level) == pytest.approx(snr_db, abs=1.0)


def test_a_speakerphone_sends_back_what_the_caller_heard_later_and_quieter():
    asked: list[tuple[float, int]] = []
    agent = tone_pcm8k(0.02, 500.0, amplitude=8000.0)

    def heard(start_s: float, samples: int) -> bytes:
        asked.append((start_s, samples))
        return agent

    line = PhoneLine(LineCondition(echo_delay_ms=180.0, echo_level_db=-12.0), 3000.0)
    out = ulaw_decode(line.carry(SILENT, 1.0, heard))
    assert asked == [(pytest.approx(1.0 - 0.02 - 0.18), 160)]
    assert db(rms(out) / rms(agent)) == pytest.approx(-12.0, abs=0.5)
    assert line.carry(SILENT, 0.1, heard) == SILENT  # nothing heard that long ago yet


def test_a_quiet_line_is_quieter_by_its_gain():
    speech = tone_pcm8k(0.02, 300.0, amplitude=8000.0)
    line = PhoneLine(LineCondition(gain_db=-20.0), 3000.0)
    out = ulaw_decode(line.carry(ulaw_encode(speech), 0.02))
    assert db(rms(out) / rms(speech)) == pytest.approx(-20.0, abs=0.5)


def test_losses_come_in_bursts_at_their_rate_and_late_messages_keep_their_order():
    link = LinkLoss(LineCondition(loss=0.1, loss_burst=3.0, jitter_ms=40.0, seed=5))
    lost = [link.lose() for _ in range(20000)]
    assert sum(lost) / len(lost) == pytest.approx(0.1, abs=0.015)
    bursts = Counter()
    run = 0
    for gone in [*lost, False]:
        if gone:
            run += 1
        elif run:
            bursts[run] += 1
            run = 0
    mean_burst = sum(k * v for k, v in bursts.items()) / sum(bursts.values())
    assert mean_burst == pytest.approx(3.0, abs=0.3)
    arrivals = [link.arrival(0.02 * n) for n in range(500)]
    assert arrivals == sorted(arrivals)
    delays = [a - 0.02 * n for n, a in enumerate(arrivals)]
    assert min(delays) >= 0 and 0.02 < np.mean(delays) < 0.12


async def test_a_lossy_jittery_line_delivers_fewer_media_messages_in_bunches():
    condition = LineCondition(name="lossy", loss=0.2, loss_burst=2.0, jitter_ms=60.0, seed=2)
    async with FakeAgentServer(reply_parts=1) as server:
        report = await CallerEmulator(server.url).run(
            [CallerLine(pcm8k=tone_pcm8k(1.0, 300.0), pause_after_s=0.3, text="hello")],
            lead_in_s=0.2,
            tail_s=0.3,
            condition=condition,
        )
    media = server.messages("media")
    chunks = [int(r.msg["media"]["chunk"]) for r in media]
    assert chunks == sorted(chunks) and len(set(chunks)) == len(chunks)
    sent = len(chunks) + report.media_lost
    assert sent >= chunks[-1]  # the gaps in chunk numbers are the losses
    assert 0.1 < report.media_lost / sent < 0.3
    gaps = np.diff([r.at for r in media])
    assert np.sum(gaps < 0.005) > 10  # late messages arrive together


async def test_an_office_line_carries_noise_between_the_callers_lines():
    async with FakeAgentServer(reply_parts=1) as server:
        await CallerEmulator(server.url).run(
            [CallerLine(pcm8k=tone_pcm8k(0.5, 300.0, amplitude=6000.0), text="hello")],
            lead_in_s=0.4,
            tail_s=0.2,
            max_wait_reply_s=0.3,  # the fake takes the noise for speech and never answers
            condition=BUILTIN["office"],
        )
    first = server.messages("media")[:15]  # the lead-in: the caller is not speaking yet
    levels = [rms(ulaw_decode(base64.b64decode(r.msg["media"]["payload"]))) for r in first]
    speech = 6000 / np.sqrt(2)
    assert db(speech / np.mean(levels)) == pytest.approx(15.0, abs=2.0)
