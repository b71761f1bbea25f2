"""A stock pipecat 1.14 Twilio bot, built the way pipecat's own Twilio examples build one.

Nothing of voiceagent is in it: pipecat's ``TwilioFrameSerializer`` (``auto_hang_up`` off:
there is no Twilio account on loopback), ``FastAPIWebsocketTransport`` served by uvicorn,
pipecat's ``DeepgramSTTService``, ``OpenAILLMService`` and ``DeepgramTTSService`` (WebSocket),
an ``LLMContextAggregatorPair`` with pipecat's default user turn strategies and Silero VAD,
and pipecat's ``DTMFAggregator`` (how a pipecat bot takes keypad digits). The greeting is a
``TTSSpeakFrame`` queued when the caller connects. Used by ``bench/vs_pipecat.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI, WebSocket
from loguru import logger
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.frames.frames import TTSSpeakFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.dtmf_aggregator import DTMFAggregator
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.runner.utils import parse_telephony_websocket
from pipecat.serializers.twilio import TwilioFrameSerializer
from pipecat.services.deepgram.stt import DeepgramSTTService
from pipecat.services.deepgram.tts import DeepgramTTSService
from pipecat.services.openai.llm import OpenAILLMService
from pipecat.transports.websocket.fastapi import (
    FastAPIWebsocketParams,
    FastAPIWebsocketTransport,
)
from pipecat.workers.runner import WorkerRunner

PHONE_RATE = 8000


@dataclass(frozen=True)
class Providers:
    """Where the bot's STT, LLM and TTS are (the same loopback servers voiceagent uses)."""

    deepgram_url: str
    deepgram_key: str
    llm_url: str
    llm_key: str
    llm_model: str
    system_prompt: str
    greeting: str


async def run_bot(websocket: WebSocket, providers: Providers) -> None:
    """One call: the pipeline of pipecat's Twilio example, until the caller hangs up."""
    _, call_data = await parse_telephony_websocket(websocket)
    serializer = TwilioFrameSerializer(
        stream_sid=call_data["stream_id"],
        call_sid=call_data["call_id"],
        params=TwilioFrameSerializer.InputParams(auto_hang_up=False),
    )
    transport = FastAPIWebsocketTransport(
        websocket=websocket,
        params=FastAPIWebsocketParams(
            audio_in_enabled=True,
            audio_out_enabled=True,
            add_wav_header=False,
            serializer=serializer,
        ),
    )
    stt = DeepgramSTTService(api_key=providers.deepgram_key, base_url=providers.deepgram_url)
    llm = OpenAILLMService(
        api_key=providers.llm_key,
        base_url=providers.llm_url,
        settings=OpenAILLMService.Settings(
            model=providers.llm_model, system_instruction=providers.system_prompt
        ),
    )
    tts = DeepgramTTSService(
        api_key=providers.deepgram_key,
        base_url=providers.deepgram_url,
        settings=DeepgramTTSService.Settings(voice="aura-2-thalia-en"),
    )
    context = LLMContext()
    aggregators = LLMContextAggregatorPair(
        context, user_params=LLMUserAggregatorParams(vad_analyzer=SileroVADAnalyzer())
    )
    pipeline = Pipeline(
        [
            transport.input(),
            stt,
            DTMFAggregator(),
            aggregators.user(),
            llm,
            tts,
            transport.output(),
            aggregators.assistant(),
        ]
    )
    worker = PipelineWorker(
        pipeline,
        params=PipelineParams(audio_in_sample_rate=PHONE_RATE, audio_out_sample_rate=PHONE_RATE),
        idle_timeout_secs=None,
        cancel_on_idle_timeout=False,
    )

    @transport.event_handler("on_client_connected")
    async def on_client_connected(_transport, _client) -> None:
        await worker.queue_frames([TTSSpeakFrame(providers.greeting)])

    @transport.event_handler("on_client_disconnected")
    async def on_client_disconnected(_transport, _client) -> None:
        await worker.cancel()

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    await runner.run()


def create_app(providers: Providers) -> FastAPI:
    """The bot's server: Twilio's Media Stream WebSocket on ``/media``."""
    app = FastAPI()

    @app.websocket("/media")
    async def media(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            await run_bot(websocket, providers)
        except Exception as e:  # one call's failure must not take the server down
            logger.opt(exception=e).error(f"stock pipecat bot: call failed: {e!r}")

    return app


@asynccontextmanager
async def serve_stock_bot(providers: Providers) -> AsyncIterator[str]:
    """Run the bot's server on 127.0.0.1 in this loop; yield its Media Streams URL."""
    config = uvicorn.Config(
        create_app(providers), host="127.0.0.1", port=0, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/media"
    finally:
        server.should_exit = True
        await asyncio.wait({task}, timeout=10)
