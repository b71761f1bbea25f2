"""The turn engine in a plain pipecat pipeline: pipecat's FastAPI WebSocket transport for Twilio.

    pip install 'pipecat-ai[websocket]' uvicorn
    DEEPGRAM_API_KEY=… OPENAI_API_KEY=… python examples/pipecat_pipeline.py --port 8765

Point a Twilio number's ``<Connect><Stream url="wss://HOST/media">`` at it. No voiceagent
server: pipecat's ``FastAPIWebsocketTransport`` owns the socket and paces the audio;
voiceagent brings the Twilio serializer (strict parsing, marks, the heard ledger) and the
stages between the transport's input and output::

    transport.input()                     Twilio messages → frames (TwilioFrameSerializer)
    CallerVoiceProcessor                  Silero VAD + sound onset
    Deepgram STT                          partials and finals with their audio spans
    TurnProcessor                         the turn engine: commit, early start, barge-in
    LLM (VoiceLLMMixin)                   OpenAI-compatible, speculation gate, tool policy
    SentenceAggregator                    clause-sized chunks
    Deepgram TTS                          audio, then each chunk's text
    TwilioMarks                           a mark after each chunk, for the serializer
    transport.output()                    frames → Twilio messages (TwilioFrameSerializer)

What the caller heard comes back as ``AgentHeardFrame`` from the transport's input (Twilio's
mark echoes), and the conversation keeps only that.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import aiohttp
from fastapi import FastAPI, WebSocket
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams, FastAPIWebsocketTransport
from pipecat.workers.runner import WorkerRunner

from voiceagent import (
    CallerVoiceProcessor,
    SentenceAggregator,
    Settings,
    TurnProcessor,
    TwilioFrameSerializer,
    TwilioMarks,
    check_chain,
    create_deepgram_stt,
    create_deepgram_tts,
    create_llm_service,
)
from voiceagent.settings import PIPELINE_SAMPLE_RATE

LINE_RATE = 8000  # Twilio's μ-law


def call_processors(settings: Settings, http: aiohttp.ClientSession) -> list[FrameProcessor]:
    """The stages between the transport's input and output (checked like the builder's)."""
    agent, cloud = settings.agent, settings.cloud
    processors: list[FrameProcessor] = [
        CallerVoiceProcessor(settings.turns.voice),
        create_deepgram_stt(cloud),
        TurnProcessor(options=settings.turns, greeting=agent.greeting),
        create_llm_service(
            base_url=cloud.openai_base_url,
            api_key=cloud.openai_api_key,
            model=cloud.openai_model,
            max_tokens=agent.max_tokens,
            temperature=agent.temperature,
            system_instruction=agent.system_prompt,
        ),
        SentenceAggregator(first_chunk_min_words=settings.turns.first_chunk_min_words),
        create_deepgram_tts(cloud, http, sample_rate=LINE_RATE),  # speech at the phone's rate
        TwilioMarks(),
    ]
    check_chain(processors)  # e.g. an LLM without VoiceLLMMixin is refused here, not mid-call
    return processors


async def run_call(
    websocket: WebSocket,
    settings: Settings,
    http: aiohttp.ClientSession,
    on_call: Callable[[list[FrameProcessor]], None] | None = None,
) -> None:
    """One Twilio call on an accepted WebSocket, until the caller hangs up."""
    serializer = TwilioFrameSerializer(settings=settings.transport)
    transport = FastAPIWebsocketTransport(
        websocket,
        FastAPIWebsocketParams(
            audio_in_enabled=True,
            audio_out_enabled=True,
            add_wav_header=False,
            serializer=serializer,
            allowed_origins=[],  # Twilio sends no Origin header
        ),
    )
    processors = call_processors(settings, http)
    if on_call is not None:
        on_call(processors)
    worker = PipelineWorker(
        Pipeline([transport.input(), *processors, transport.output()]),
        # Caller audio at the rate VAD and STT want; agent audio at the phone line's, so
        # nothing resamples it between the TTS and Twilio.
        params=PipelineParams(
            audio_in_sample_rate=PIPELINE_SAMPLE_RATE, audio_out_sample_rate=LINE_RATE
        ),
        idle_timeout_secs=None,
        enable_rtvi=False,
    )

    @transport.event_handler("on_client_disconnected")
    async def _hung_up(_transport: FastAPIWebsocketTransport, _socket: WebSocket) -> None:
        await worker.cancel()

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    await runner.run()


def create_app(
    settings: Settings, on_call: Callable[[list[FrameProcessor]], None] | None = None
) -> FastAPI:
    """A FastAPI app answering Twilio Media Streams on ``/media``."""
    http: list[aiohttp.ClientSession] = []  # keep-alive to the TTS, shared by the calls

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        http.append(aiohttp.ClientSession())
        try:
            yield
        finally:
            await http.pop().close()

    app = FastAPI(lifespan=lifespan)

    @app.websocket("/media")
    async def media(websocket: WebSocket) -> None:
        await websocket.accept()
        await run_call(websocket, settings, http[0], on_call)

    return app


def main() -> None:
    """Serve on ``--host``/``--port`` with settings from the environment."""
    import uvicorn
    from loguru import logger

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    logger.enable("voiceagent")
    uvicorn.run(create_app(Settings.from_env()), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
