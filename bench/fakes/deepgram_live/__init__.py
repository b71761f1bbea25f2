"""A Deepgram live-transcription server (``GET /v1/listen``) for development and benchmarks.

Two instruments share one implementation of the protocol, segmentation and timing:

- **recognizing** (``WhisperRecognizer``): real recognition by voiceagent's offline Whisper
  (tiny.en by default). Interims lag the audio by the decode time, finals may carry words the
  last interim lacked or revise them, long speech is split into several ``is_final``
  segments, words are misheard. This is what turn-taking is developed and measured on.
- **scripted** (``ScriptedRecognizer``): told each caller line's text, revealed on the same
  timing. NOT recognition; for load tests that real Whisper cannot serve (a hundred calls on
  two cores). Its ``instrument`` string says so; print it with every figure.

What it reproduces of Deepgram's documented live API (PROTOCOLS.md "Deepgram"):

- Handshake: ``Authorization: Token <key>`` (else 401 with a ``dg-error`` header); query
  ``encoding=linear16`` (any ``sample_rate``) or ``encoding=mulaw&sample_rate=8000``, mono;
  ``interim_results``, ``endpointing`` (ms or ``false``; default 10), ``utterance_end_ms``,
  ``vad_events``, ``punctuate`` / ``smart_format``; a bad parameter is a 400. Extra:
  ``x_delay_ms`` adds recognition latency to this connection (a slow STT).
- Time is the stream's audio timeline (seconds since its first audio byte). A server-side
  Silero detector (pipecat's bundled model) drives ``SpeechStarted``, endpointing and
  ``UtteranceEnd``; see ``segmenter.py`` for every rule.
- Interim ``Results`` (``is_final: false``) about every ``interim_interval_s`` while a
  decode is not running, each the newest *finished* recognition of the open window (so they
  lag); ``start``/``duration`` span the window, ``words`` carry absolute ``start``/``end``.
- ``is_final`` closes a window: endpointing (``speech_final: true``), long speech cut at a
  pause, ``{"type": "Finalize"}`` (``from_finalize: true``; empty when nothing was voiced).
  Finals tile the stream without overlap.
- ``UtteranceEnd`` ``utterance_end_ms`` after the last word; ``KeepAlive``;
  ``CloseStream`` → last final, ``Metadata``, close 1000; an empty binary message closes
  too; 10 s without audio or a control message → close 1011 ``NET-0001``.

In process (tests, ``bench/turns.py``)::

    async with DeepgramLiveServer(WhisperRecognizer(), recognition_delay_s=0.0) as server:
        settings.cloud = CloudSettings(deepgram_api_key=server.api_key, deepgram_url=server.url)

Standalone, in its own process::

    .venv/bin/python -m bench.fakes.deepgram_live --port 8765            # recognizing
    .venv/bin/python -m bench.fakes.deepgram_live --port 8765 --delay-ms 1000
    .venv/bin/python -m bench.fakes.deepgram_live --port 8765 --scripted lines.txt

A script file holds one caller line per text line (``#`` comments), optionally prefixed by
its voiced seconds and a tab; every connection walks it from the top.
"""

from bench.fakes.deepgram_live.connection import ConnectionRecord, SentMessage
from bench.fakes.deepgram_live.recognizers import Recognizer, WhisperRecognizer, Word
from bench.fakes.deepgram_live.scripted import ScriptedRecognizer, ScriptLine, load_script
from bench.fakes.deepgram_live.segmenter import StreamOptions
from bench.fakes.deepgram_live.server import DEFAULT_API_KEY, DeepgramLiveServer

__all__ = [
    "DEFAULT_API_KEY",
    "ConnectionRecord",
    "DeepgramLiveServer",
    "Recognizer",
    "ScriptLine",
    "ScriptedRecognizer",
    "SentMessage",
    "StreamOptions",
    "WhisperRecognizer",
    "Word",
    "load_script",
]
