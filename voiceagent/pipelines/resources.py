"""Per-process model resources shared by every call: loaded once, started/stopped with the server.

The offline stack is heavy to load (Whisper weights, a llama.cpp server, a Piper voice), so one
``AgentResources`` holds them for all calls; each call builds its own light processors around them.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from loguru import logger

from voiceagent.settings import PIPELINE_SAMPLE_RATE, Settings


@dataclass
class StageChoice:
    """Which provider serves each stage (the primary), its fallbacks, and why."""

    stt: str
    llm: str
    tts: str
    reasons: list[str] = field(default_factory=list)
    chains: dict[str, list[str]] = field(default_factory=dict)

    def chain(self, stage: str) -> list[str]:
        """The stage's providers in the order they are tried: the primary, then fallbacks."""
        return self.chains.get(stage) or [getattr(self, stage)]


@dataclass
class LLMEndpoint:
    """Where one OpenAI-compatible LLM provider is reached."""

    base_url: str | None
    api_key: str | None
    model: str


def choose_stages(settings: Settings) -> StageChoice:
    """Pick local or cloud per stage: explicit settings win; with ``auto`` a key means cloud."""
    cloud = settings.cloud
    reasons: list[str] = []

    def pick(stage: str, wanted: str, cloud_name: str, has_key: bool, key_name: str) -> str:
        if wanted != "auto":
            if wanted == cloud_name and not has_key:
                raise ValueError(
                    f"{stage}={cloud_name} needs {key_name}; set it or use {stage}=local"
                )
            reasons.append(f"{stage}: {wanted} (configured)")
            return wanted
        choice = cloud_name if has_key else "local"
        why = f"{key_name} is set" if has_key else f"no {key_name}: offline default"
        reasons.append(f"{stage}: {choice} ({why})")
        return choice

    stt = pick("stt", settings.stt, "deepgram", bool(cloud.deepgram_api_key), "DEEPGRAM_API_KEY")
    llm = pick(
        "llm",
        settings.llm,
        "openai",
        bool(cloud.openai_api_key or cloud.openai_base_url),
        "OPENAI_API_KEY/OPENAI_BASE_URL",
    )
    tts = pick("tts", settings.tts, "deepgram", bool(cloud.deepgram_api_key), "DEEPGRAM_API_KEY")
    keys = {
        "deepgram": (bool(cloud.deepgram_api_key), "DEEPGRAM_API_KEY"),
        "openai": (bool(cloud.openai_api_key or cloud.openai_base_url), "OPENAI_API_KEY"),
        "local": (True, ""),
    }
    chains: dict[str, list[str]] = {}
    for stage, primary in (("stt", stt), ("llm", llm), ("tts", tts)):
        configured = getattr(settings.fallback, stage)
        rest = configured if configured is not None else ([] if primary == "local" else ["local"])
        chain = [primary]
        for name in rest:
            has_key, key_name = keys[name]
            if not has_key:
                raise ValueError(f"fallback {stage}={name} needs {key_name}; set it or drop it")
            if name not in chain:
                chain.append(name)
        chains[stage] = chain
        if len(chain) > 1:
            reasons.append(f"{stage} fallback: {' → '.join(chain)}")
    return StageChoice(stt=stt, llm=llm, tts=tts, reasons=reasons, chains=chains)


class AgentResources:
    """Models and servers shared by all calls of one process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.choice = choose_stages(settings)
        self.whisper: Any = None
        self.llama: Any = None
        self.llm_base_url: str | None = settings.cloud.openai_base_url
        self.llm_api_key: str | None = settings.cloud.openai_api_key
        self.llm_model: str = settings.cloud.openai_model
        self.piper_paths: tuple[Path, Path] | None = None
        self.piper_voice: Any = None
        self.piper_phrases: Any = None
        """The greetings, synthesized while starting (``PreparedPhrases``)."""
        cloud = settings.cloud
        self.llm_endpoints: dict[str, LLMEndpoint] = {
            "openai": LLMEndpoint(cloud.openai_base_url, cloud.openai_api_key, cloud.openai_model)
        }
        self._http: aiohttp.ClientSession | None = None
        self._llm_http: httpx.AsyncClient | None = None

    def http_session(self) -> aiohttp.ClientSession:
        """The process's shared keep-alive HTTP session (cloud TTS requests), made on first use."""
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession()
        return self._http

    def llm_http_client(self) -> httpx.AsyncClient:
        """The HTTP client every call's LLM service shares (keep-alive), made on first use."""
        if self._llm_http is None or self._llm_http.is_closed:
            from voiceagent.services.llm import shared_http_client

            self._llm_http = shared_http_client()
        return self._llm_http

    def llm_endpoint(self, provider: str) -> LLMEndpoint:
        """Where ``provider`` ("openai" or "local") is reached; the primary's fields win.

        Raises:
            ValueError: The local server is not running (``start`` was not awaited).
        """
        if provider == self.choice.llm:
            return LLMEndpoint(self.llm_base_url, self.llm_api_key, self.llm_model)
        endpoint = self.llm_endpoints.get(provider)
        if endpoint is None:
            raise ValueError(f"LLM provider {provider!r} is not started (await resources.start())")
        return endpoint

    async def start(self, progress: Any = None) -> None:
        """Load what the chosen stages need; ``progress(msg)`` is told about slow steps."""
        say = progress or (lambda msg: logger.info(msg))
        for reason in self.choice.reasons:
            logger.info(f"pipeline stage {reason}")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        tasks = []
        if "local" in self.choice.chain("stt"):
            tasks.append(self._load_whisper(say))
        if "local" in self.choice.chain("tts"):
            tasks.append(self._load_piper(say))
        if "local" in self.choice.chain("llm"):
            tasks.append(self._start_llama(say))
        await asyncio.gather(*tasks)
        if self.llama is not None:
            say("warming the language model with the system prompt")
            await self.llama.warm_up(self.settings.agent.system_prompt)

    async def _load_whisper(self, say: Any) -> None:
        from voiceagent.services.local.whisper_stt import load_transcriber

        say(f"loading Whisper {self.settings.local.whisper_model}")
        self.whisper = await asyncio.to_thread(load_transcriber, self.settings.local)
        # The first decode of a process pays one-off allocations (≈0.3 s): not on a caller's turn.
        await asyncio.to_thread(self.whisper.transcribe, bytes(PIPELINE_SAMPLE_RATE * 2))

    async def _load_piper(self, say: Any) -> None:
        from voiceagent.services.local.weights import resolve_piper_voice

        self.piper_paths = await asyncio.to_thread(resolve_piper_voice, self.settings.local)
        say(f"loading Piper voice {self.piper_paths[0].name}")
        from voiceagent.services.local.piper_tts import load_piper_voice

        model, config = self.piper_paths
        self.piper_voice = await asyncio.wrap_future(load_piper_voice(model, config))
        await self._prepare_phrases(say)

    async def _prepare_phrases(self, say: Any) -> None:
        """Synthesize the greetings now, so no call's first words wait for Piper."""
        from voiceagent.services.local.piper_phrases import PreparedPhrases, fixed_phrases
        from voiceagent.services.local.piper_tts import next_sentence

        phrases = PreparedPhrases(self.piper_voice)
        texts = fixed_phrases(self.settings)
        say(f"preparing {len(texts)} fixed phrase(s) with Piper (greetings, voicemail message)")
        await asyncio.to_thread(phrases.prepare, texts, next_sentence)
        self.piper_phrases = phrases

    async def _start_llama(self, say: Any) -> None:
        from voiceagent.services.local.llama_server import LlamaServer
        from voiceagent.services.local.weights import resolve_llm_gguf

        local = self.settings.local
        say("preparing the local language model weights (assembled once, SHA-256 checked)")
        gguf = await asyncio.to_thread(resolve_llm_gguf, local)
        say(f"starting the llama.cpp server for {gguf.name}")
        self.llama = LlamaServer(
            gguf, port=local.llm_port, threads=local.llm_threads, n_ctx=local.llm_ctx
        )
        await self.llama.start()
        endpoint = LLMEndpoint(self.llama.base_url, "local", self.llama.model_alias)
        self.llm_endpoints["local"] = endpoint
        if self.choice.llm == "local":
            self.llm_base_url = endpoint.base_url
            self.llm_api_key = endpoint.api_key
            self.llm_model = endpoint.model

    async def stop(self) -> None:
        """Stop child processes; close the HTTP clients."""
        if self._http is not None:
            await self._http.close()
            self._http = None
        if self._llm_http is not None:
            await self._llm_http.aclose()
            self._llm_http = None
        if self.llama is not None:
            await self.llama.stop()
            self.llama = None
