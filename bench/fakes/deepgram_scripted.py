"""A minimal Deepgram live-transcription server (``/v1/listen``) that reads a script, for load runs.

Stand-in until ``bench/fakes/deepgram_live.py`` (branch ``stt-realistic``, ``ScriptedRecognizer``)
lands on main: it speaks the Deepgram wire protocol (``Authorization: Token``, binary PCM16 in,
``Results`` / ``UtteranceEnd`` / ``Metadata`` out, ``KeepAlive`` / ``Finalize`` /
``CloseStream``) but does not recognize speech. Every connection is one call of the load script:
the n-th stretch of caller sound is line ``n % len(lines)``, whose words are revealed in
proportion to the time since its first sound (by the line's known audio duration). While the caller
speaks, an interim goes out every ``partial_s`` of stream audio; ``Finalize`` (pipecat sends it
at the VAD stop) answers ``final_s`` later with a final of the words heard (all of them near the
line's end); ``endpointing_s`` of silence finalizes the rest and sends ``UtteranceEnd``.
Per audio message it costs one RMS over the samples (numpy) and a few comparisons.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from aiohttp import WSMsgType, web

SPEECH_RMS = 200.0
"""PCM16 RMS above which a frame is caller sound (the emulator's silence decodes to 0)."""
END_SHARE = 0.85
"""A ``Finalize`` past this share of the line's audio finalizes the whole line."""


@dataclass(frozen=True)
class ScriptLine:
    """One caller line: its words and the length of its audio."""

    text: str
    duration_s: float


@dataclass
class _Utterance:
    line: ScriptLine
    start_s: float
    words: list[str] = field(default_factory=list)
    last_voiced_s: float = 0.0
    final_words: int = 0
    next_partial_s: float = 0.0

    def heard(self, now_s: float, *, finalizing: bool = False) -> int:
        share = (now_s - self.start_s) / max(self.line.duration_s, 1e-3)
        if finalizing and share >= END_SHARE:
            return len(self.words)
        return min(len(self.words), max(1, int(share * len(self.words))))


@dataclass
class ListenStats:
    """Counters over every connection (read by the providers process at exit)."""

    connections: int = 0
    refused: int = 0
    audio_messages: int = 0
    interims: int = 0
    finals: int = 0


class ScriptedListen:
    """``/v1/listen`` handler: scripted transcripts of each call's caller lines."""

    path = "/v1/listen"

    def __init__(
        self,
        lines: list[ScriptLine],
        *,
        api_key: str,
        partial_s: float = 0.1,
        final_s: float = 0.15,
        endpointing_s: float = 0.3,
    ) -> None:
        """Configure the script and the latency shape (seconds)."""
        if not lines:
            raise ValueError("the scripted STT needs at least one line")
        self.lines = lines
        self.api_key = api_key
        self.partial_s = partial_s
        self.final_s = final_s
        self.endpointing_s = endpointing_s
        self.stats = ListenStats()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """One live-transcription socket (one call)."""
        if request.headers.get("Authorization") != f"Token {self.api_key}":
            self.stats.refused += 1
            return web.Response(status=401, headers={"dg-error": "Invalid credentials."})
        rate = int(request.query.get("sample_rate", "16000"))
        ws = web.WebSocketResponse(compress=False)
        await ws.prepare(request)
        self.stats.connections += 1
        await _Session(self, ws, rate).run()
        return ws


class _Session:
    def __init__(self, owner: ScriptedListen, ws: web.WebSocketResponse, rate: int) -> None:
        self._owner = owner
        self._ws = ws
        self._bytes_per_s = 2 * rate
        self._bytes = 0
        self._count = 0
        self._utterance: _Utterance | None = None
        self._tasks: set[asyncio.Task] = set()

    @property
    def _now_s(self) -> float:
        return self._bytes / self._bytes_per_s

    async def run(self) -> None:
        try:
            async for msg in self._ws:
                if msg.type == WSMsgType.BINARY:
                    await self._on_audio(msg.data)
                elif msg.type == WSMsgType.TEXT:
                    kind = json.loads(msg.data).get("type")
                    if kind == "Finalize":
                        self._later(self._finalize())
                    elif kind == "CloseStream":
                        await self._send({"type": "Metadata", "duration": self._now_s})
                        break
        finally:
            for task in self._tasks:
                task.cancel()
            await self._ws.close()

    async def _on_audio(self, data: bytes) -> None:
        owner = self._owner
        owner.stats.audio_messages += 1
        samples = np.frombuffer(data[: len(data) // 2 * 2], dtype="<i2").astype(np.float32)
        seconds = len(data) / self._bytes_per_s
        self._bytes += len(data)
        now = self._now_s
        loud = samples.size > 0 and float(np.sqrt(np.mean(samples * samples))) > SPEECH_RMS
        utterance = self._utterance
        if loud:
            if utterance is None:
                line = owner.lines[self._count % len(owner.lines)]
                self._count += 1
                utterance = _Utterance(line, start_s=now - seconds, words=line.text.split())
                utterance.next_partial_s = now + owner.partial_s
                self._utterance = utterance
            utterance.last_voiced_s = now
        if utterance is None:
            return
        if loud and now >= utterance.next_partial_s:
            utterance.next_partial_s = now + owner.partial_s
            await self._results(utterance, utterance.heard(now), final=False)
        elif not loud and now - utterance.last_voiced_s >= owner.endpointing_s:
            self._utterance = None
            if utterance.final_words < len(utterance.words):
                await self._results(utterance, len(utterance.words), final=True)
            end = {"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": now}
            await self._send(end)

    async def _finalize(self) -> None:
        await asyncio.sleep(self._owner.final_s)
        utterance = self._utterance
        if utterance is None:
            await self._send(_results_body([], self._now_s, 0.0, final=True, from_finalize=True))
            return
        upto = utterance.heard(self._now_s, finalizing=True)
        await self._results(utterance, upto, final=True, fin=True)

    async def _results(
        self, utterance: _Utterance, upto: int, *, final: bool, fin: bool = False
    ) -> None:
        words = utterance.words[utterance.final_words : upto]
        if not words and not final:
            return
        start = utterance.start_s
        body = _results_body(words, start, self._now_s - start, final=final, from_finalize=fin)
        if final:
            utterance.final_words = max(utterance.final_words, upto)
            self._owner.stats.finals += 1
        else:
            self._owner.stats.interims += 1
        await self._send(body)

    def _later(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, body: dict[str, Any]) -> None:
        if not self._ws.closed:
            with contextlib.suppress(ConnectionError):
                await self._ws.send_str(json.dumps(body))


def _results_body(
    words: list[str], start: float, duration: float, *, final: bool, from_finalize: bool
) -> dict[str, Any]:
    step = duration / max(1, len(words))
    items = [
        {
            "word": w.lower().strip(".,?!"),
            "start": start + i * step,
            "end": start + (i + 1) * step,
            "confidence": 0.97,
            "punctuated_word": w,
        }
        for i, w in enumerate(words)
    ]
    return {
        "type": "Results",
        "channel_index": [0, 1],
        "duration": duration,
        "start": start,
        "is_final": final,
        "speech_final": final,
        "from_finalize": from_finalize,
        "channel": {
            "alternatives": [{"transcript": " ".join(words), "confidence": 0.97, "words": items}]
        },
        "metadata": {"request_id": "bench", "model_uuid": "bench", "model_info": {}},
    }
