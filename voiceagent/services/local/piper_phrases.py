"""Fixed phrases (the greetings) synthesized by Piper once per process, before any call.

The agent's first words on a call are known in advance — the greeting, the outbound greeting,
the voicemail message —
and on a loaded machine Piper takes a noticeable time to synthesize such a sentence (one ONNX
run per sentence before its first sample). The process's ``AgentResources`` synthesizes them
while it starts (in a worker thread); a call's ``LocalPiperTTSService`` then plays a prepared
phrase at once instead of synthesizing it, and that first synthesis has also warmed Piper up
with real sentences. Pipecat has no such cache; it is a dictionary of PCM per text.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from loguru import logger

MAX_PHRASES = 16
"""Phrases kept per process (the configured greetings; more are not prepared)."""


class PreparedPhrases:
    """PCM16 chunks (Piper's sample rate) of fixed phrases, one list per text, per process."""

    def __init__(self, voice: Any, synthesis: Any = None, *, max_phrases: int = MAX_PHRASES):
        """Create the (empty) cache for one loaded Piper voice and its synthesis options."""
        self.voice = voice
        self.synthesis = synthesis
        self.max_phrases = max_phrases
        self._audio: dict[str, tuple[bytes, ...]] = {}
        self._lock = threading.Lock()
        self.hits = 0

    def __len__(self) -> int:
        """How many phrases are ready."""
        return len(self._audio)

    def prepare(
        self, texts: Iterable[str], next_chunk: Callable[[Any], Any] | None = None
    ) -> list[str]:
        """Synthesize ``texts`` now; blocks, so run it in a worker thread (never the event loop).

        Args:
            texts: The phrases, as the TTS will be asked to say them (empty ones are skipped).
            next_chunk: How to take Piper's next sentence from its iterator (the TTS passes its
                locked step, so preparing never runs alongside a call's synthesis).

        Returns:
            The texts synthesized by this call (already prepared ones are not redone).
        """
        step = next_chunk or (lambda chunks: next(chunks, None))
        done = []
        for text in texts:
            key = text.strip()
            if not key or key in self._audio:
                continue
            if len(self._audio) >= self.max_phrases:
                logger.warning(f"not preparing {key[:40]!r}: {self.max_phrases} phrases already")
                break
            chunks = iter(self.voice.synthesize(key, syn_config=self.synthesis))
            audio = []
            while (chunk := step(chunks)) is not None:
                audio.append(chunk.audio_int16_bytes)
            with self._lock:
                self._audio[key] = tuple(audio)
            done.append(key)
        return done

    def get(self, text: str) -> tuple[bytes, ...] | None:
        """The prepared audio of ``text`` (its Piper sentences, in order), or None."""
        with self._lock:
            audio = self._audio.get(text.strip())
        if audio is not None:
            self.hits += 1
        return audio


def fixed_phrases(settings: Any) -> list[str]:
    """The configured phrases: the greetings a call starts with and the voicemail message."""
    telephony = settings.telephony
    texts = [settings.agent.greeting, telephony.outbound_greeting, telephony.voicemail_message]
    return [t for t in dict.fromkeys(t for t in texts if isinstance(t, str) and t.strip())]
