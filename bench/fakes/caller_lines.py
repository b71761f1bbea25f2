"""The bench's scripted calls and their caller audio (Piper speech through a phone line).

Kinds of line:

- ``turn``: a normal question; the caller waits for the reply to finish.
- ``barge``: spoken ``barge_after_s`` after the agent's reply starts, over it.
- ``backchannel``: an "uh-huh" over the agent's reply; must not interrupt it.
- ``pause``: the first half of a sentence; the caller pauses ``pause_after_s`` and goes on.

Audio is synthesized once with the offline Piper voice (cached), sent through 8 kHz μ-law
and trimmed of leading/trailing silence, so a line's end is the caller's end of speech.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from voiceagent.emulator.script import CallerLine
from voiceagent.settings import Settings

RATE = 8000
TRIM_FRAME = 80  # 10 ms at 8 kHz
TRIM_DB = -34.0  # frames this far below the loudest frame are silence


@dataclass(frozen=True)
class BenchLine:
    """One caller line of a scripted call."""

    text: str
    kind: str = "turn"
    pause_after_s: float = 0.8
    barge_after_s: float = 1.0
    pcm8k: bytes = b""

    @property
    def duration_s(self) -> float:
        """Length of the (trimmed) audio."""
        return len(self.pcm8k) / 2 / RATE

    def caller_line(self) -> CallerLine:
        """The emulator's line."""
        over_agent = self.kind in ("barge", "backchannel")
        return CallerLine(
            pcm8k=self.pcm8k,
            pause_after_s=self.pause_after_s,
            text=self.text,
            start_after_agent_audio_s=self.barge_after_s if over_agent else None,
            wait_for_reply=self.kind != "pause",
        )


def _l(text: str, kind: str = "turn", **kw) -> BenchLine:
    return BenchLine(text=text, kind=kind, **kw)


CALL_SCRIPTS: list[tuple[str, list[BenchLine]]] = [
    (
        "booking+barge-in",
        [
            _l("Hi, I'd like to book a teeth cleaning, please."),
            _l("Do you have anything open next Tuesday afternoon?"),
            _l("Can you explain what the new patient visit includes?"),
            _l("Wait, actually I need to cancel my other appointment first.", "barge"),
            _l("Thanks, that's all for today. Goodbye!"),
        ],
    ),
    (
        "pricing+backchannel",
        [
            _l("How much does a cleaning cost without insurance?"),
            _l("Tell me about your whitening options."),
            _l("Uh-huh.", "backchannel"),
            _l("I'd like to book a cleaning for my son and", "pause", pause_after_s=0.5),
            _l("my daughter on the same day."),
            _l("What time do you close on Fridays?"),
        ],
    ),
    (
        "payment+barge-in",
        [
            _l("Hello, is this Bright Smile Dental?"),
            _l("Could you explain how your payment plans work?"),
            _l("Stop, sorry, I only need the price of a filling.", "barge"),
            _l("Do you have anything open next Wednesday,", "pause", pause_after_s=0.5),
            _l("maybe in the morning?"),
            _l("Great, thank you so much. Goodbye!"),
        ],
    ),
]


def trim_silence(pcm16: bytes) -> bytes:
    """Cut leading and trailing frames quieter than ``TRIM_DB`` below the loudest frame."""
    samples = np.frombuffer(pcm16, dtype="<i2")
    frames = len(samples) // TRIM_FRAME
    if frames == 0:
        return pcm16
    blocks = samples[: frames * TRIM_FRAME].reshape(frames, TRIM_FRAME).astype(np.float64)
    rms = np.sqrt(np.mean(blocks**2, axis=1))
    loud = np.flatnonzero(rms >= rms.max() * 10 ** (TRIM_DB / 20))
    if loud.size == 0:
        return b""
    return samples[loud[0] * TRIM_FRAME : (loud[-1] + 1) * TRIM_FRAME].tobytes()


def prepare_lines(
    settings: Settings, scripts: list[tuple[str, list[BenchLine]]]
) -> list[tuple[str, list[BenchLine]]]:
    """Synthesize (cached) and trim every line's audio; blocking, run it in a thread.

    Raises:
        voiceagent.services.local.weights.WeightsError: the Piper voice is not installed.
    """
    from piper import PiperVoice

    from voiceagent.demo import synthesize_caller_lines
    from voiceagent.emulator.audio import load_wav_pcm8k
    from voiceagent.services.local.weights import resolve_piper_voice

    model, config = resolve_piper_voice(settings.local)
    voice = PiperVoice.load(str(model), config_path=str(config))
    unique = sorted({line.text for _, lines in scripts for line in lines})
    wavs = synthesize_caller_lines(
        voice, tuple(_l(text) for text in unique), settings.local.cache_dir / "bench"
    )
    audio = {
        text: trim_silence(load_wav_pcm8k(path)) for text, path in zip(unique, wavs, strict=True)
    }
    return [
        (name, [replace(line, pcm8k=audio[line.text]) for line in lines]) for name, lines in scripts
    ]
