"""What the live server hears words with: the recognizer interface and real Whisper.

A ``Recognizer`` is shared by the whole server; each connection opens a session. The
protocol, segmentation and timing code never looks inside: it hands a session each window
to recognize (``Job`` + its 16 kHz PCM16 audio) and gets words with absolute stream times.

``WhisperRecognizer`` is real recognition: voiceagent's own Whisper (``WhisperTranscriber``
on the weights ``resolve_whisper_model`` finds offline, tiny.en by default) decoding each
window with word timestamps (``WhisperTranscriber.transcribe_words``) in a worker thread.
Two choices keep Whisper's own artifacts from passing for a streaming STT's: the decode
starts ``DECODE_LEAD_S`` before the window's first voiced frame (seconds of leading silence
make Whisper repeat itself), and the encoder window is padded with ``PAD_S`` of silence
(with voiceagent's 6 s, one-word answers come back empty or repeated: "Yeah." → "",
"No." → "No? No? No?").
One model serves every connection; decodes of different connections wait for each other in
its thread pool, so each stream's interims thin out when the CPU is busy, as a loaded cloud
STT's would. Misrecognitions are Whisper's own.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from bench.fakes.deepgram_live.segmenter import Job, SpeechFrame
from voiceagent.settings import LocalModelSettings

_EDGE_PUNCTUATION = re.compile(r"^[^\w$%]+|[^\w%]+$")
_VOICE_LEAD_S = 0.05  # a word may start this long before the detector's first voiced frame
DECODE_LEAD_S = 1.0
PAD_S = 15.0


@dataclass(frozen=True)
class Word:
    """One recognized word on the stream's audio timeline."""

    text: str  # as written: cased, punctuated ("Tuesday,")
    start: float
    end: float
    confidence: float

    @property
    def plain(self) -> str:
        """Deepgram's ``word``: lower case, no surrounding punctuation."""
        return _EDGE_PUNCTUATION.sub("", self.text).lower() or self.text.lower()


class RecognitionSession(Protocol):
    """One connection's view of the recognizer."""

    keeps_audio: bool
    """Whether ``recognize`` needs the window's audio (the connection buffers it if so)."""

    def observe(self, frame: SpeechFrame) -> None:
        """Every speech-detector frame of the stream, in order."""

    async def recognize(self, job: Job, pcm16k: bytes) -> list[Word]:
        """The words in ``[job.start, job.end]`` (absolute stream seconds)."""
        ...

    def close(self) -> None:
        """The connection ended."""


class Recognizer(Protocol):
    """A recognizer shared by all connections of one server."""

    instrument: str
    """Names the instrument in every figure made with it."""

    async def start(self) -> None:
        """Load what is needed (called once, before the first connection)."""

    def open(self, query: Mapping[str, str]) -> RecognitionSession:
        """A session for one connection (``query``: its handshake parameters)."""
        ...

    async def stop(self) -> None:
        """Release threads and models."""


def place_words(job: Job, words: list[Word]) -> list[Word]:
    """Clamp words into the window (and after its first voiced audio), in order."""
    floor = job.start
    if job.voice_start is not None:
        floor = max(floor, job.voice_start - _VOICE_LEAD_S)
    placed = []
    for w in words:
        end = min(max(w.end, job.start), job.end)
        start = min(max(w.start, floor if not placed else placed[-1].end), end)
        placed.append(Word(w.text, start, end, w.confidence))
    return placed


def load_server_transcriber(settings: LocalModelSettings) -> Any:
    """The configured Whisper, with the server's encoder padding (blocking: use a thread)."""
    from voiceagent.services.local.weights import resolve_whisper_model
    from voiceagent.services.local.whisper_transcriber import WhisperTranscriber

    return WhisperTranscriber(
        resolve_whisper_model(settings),
        threads=settings.whisper_threads,
        beam_size=settings.whisper_beam_size,
        short_context=settings.whisper_short_context,
        pad_s=PAD_S,
    )


class WhisperRecognizer:
    """Real recognition: voiceagent's offline Whisper, word timestamps, one shared model."""

    def __init__(
        self,
        settings: LocalModelSettings | None = None,
        *,
        transcriber: Any = None,
        workers: int = 1,
    ) -> None:
        """Describe the recognizer (nothing is loaded before ``start``).

        Args:
            settings: Which Whisper (``whisper_model``, threads, beam); default tiny.en.
            transcriber: An already loaded ``WhisperTranscriber`` to share.
            workers: Decodes that may run at once across all connections.
        """
        self.settings = settings or LocalModelSettings()
        self.transcriber = transcriber
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="dg-live")
        self.instrument = (
            f"recognizing Deepgram-protocol server: Whisper {self.settings.whisper_model} "
            f"(faster-whisper int8, {self.settings.whisper_threads} threads, real recognition)"
        )

    async def start(self) -> None:
        """Resolve and load the weights, then pay the first decode's one-off cost."""
        loop = asyncio.get_running_loop()
        if self.transcriber is None:
            self.transcriber = await loop.run_in_executor(
                self._pool, load_server_transcriber, self.settings
            )
        await loop.run_in_executor(self._pool, self.transcriber.transcribe_words, bytes(32000))

    def open(self, query: Mapping[str, str]) -> WhisperSession:
        """A session decoding through the shared model."""
        if self.transcriber is None:
            raise RuntimeError("WhisperRecognizer.start() was not awaited")
        return WhisperSession(self.transcriber, self._pool)

    async def stop(self) -> None:
        """Stop the decode threads (a running decode finishes first)."""
        await asyncio.to_thread(self._pool.shutdown, wait=True)


class WhisperSession:
    """One connection's decodes (the segmenter runs at most one at a time)."""

    keeps_audio = True

    def __init__(self, transcriber: Any, pool: ThreadPoolExecutor) -> None:
        self._transcriber = transcriber
        self._pool = pool

    def observe(self, frame: SpeechFrame) -> None:
        """Whisper hears the audio itself."""

    async def recognize(self, job: Job, pcm16k: bytes) -> list[Word]:
        """Decode the window (from just before its speech) in the shared pool."""
        skip = 0
        if job.voice_start is not None:
            skip = max(0, int((job.voice_start - DECODE_LEAD_S - job.start) * 16000)) * 2
        offset = job.start + skip / 32000
        loop = asyncio.get_running_loop()
        timed = await loop.run_in_executor(
            self._pool, self._transcriber.transcribe_words, pcm16k[skip:]
        )
        words = [Word(w.text, offset + w.start, offset + w.end, w.probability) for w in timed]
        return place_words(job, words)

    def close(self) -> None:
        """Nothing held per connection."""
