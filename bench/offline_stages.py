"""Offline stack, stage by stage, on this machine: prints the figures.

    .venv/bin/python bench/offline_stages.py [--skip-demo]

STT: partial decode time by window length and final latency after end of speech (Whisper tiny.en).
LLM: TTFT cold and warm, tokens/s (llama.cpp server, Qwen2.5-Coder-0.5B).
TTS: time to first audio and real-time factor (Piper).
Demo: caller end of speech → first agent audio, p50/p90, over the scripted call.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from voiceagent.settings import Settings  # noqa: E402

SENTENCE = "Hi, I'd like to book an appointment for next Tuesday at three in the afternoon."


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def phone_speech_16k(voice) -> bytes:
    """Piper speech → 8 kHz μ-law (a phone line) → PCM16 16 kHz, as the pipeline sees it."""
    from voiceagent.transports.twilio.codec import (
        StreamResampler,
        pcm16_to_ulaw,
        ulaw_to_pcm16,
    )

    chunks = list(voice.synthesize(SENTENCE))
    rate = chunks[0].sample_rate
    pcm = b"".join(c.audio_int16_bytes for c in chunks)
    pcm8 = StreamResampler(rate, 8000).resample(pcm)
    pcm8 = ulaw_to_pcm16(pcm16_to_ulaw(pcm8))
    return StreamResampler(8000, 16000).resample(pcm8)


def bench_stt(settings: Settings, speech16: bytes) -> None:
    from voiceagent.services.local.weights import resolve_whisper_model
    from voiceagent.services.local.whisper_stt import WhisperTranscriber

    local = settings.local
    t = time.perf_counter()
    transcriber = WhisperTranscriber(resolve_whisper_model(local), threads=local.whisper_threads)
    print(f"STT  load {time.perf_counter() - t:.2f} s")
    transcriber.transcribe(speech16[:32000])  # warm
    seconds = len(speech16) / 32000
    step = local.partial_interval_s
    window = step
    decode_times = []
    while window < seconds:
        chunk = speech16[: int(window * 16000) * 2]
        t = time.perf_counter()
        text = transcriber.transcribe(chunk)
        decode_times.append(time.perf_counter() - t)
        print(f"STT  partial @ {window:4.2f} s audio: {decode_times[-1] * 1000:5.0f} ms  '{text}'")
        window += step
    finals = []
    for _ in range(3):
        t = time.perf_counter()
        text = transcriber.transcribe(speech16)
        finals.append(time.perf_counter() - t)
    cadence = max(step, statistics.median(decode_times))
    print(
        f"STT  partial decode p50 {statistics.median(decode_times) * 1000:.0f} ms → effective "
        f"cadence {cadence * 1000:.0f} ms (ticks skipped while a decode runs)"
    )
    print(
        f"STT  final latency after end of speech p50 {statistics.median(finals) * 1000:.0f} ms "
        f"(utterance {seconds:.1f} s): '{text}'"
    )


async def bench_llm(settings: Settings) -> None:
    from openai import AsyncOpenAI

    from voiceagent.services.local.llama_server import LlamaServer
    from voiceagent.services.local.weights import resolve_llm_gguf

    local = settings.local
    gguf = resolve_llm_gguf(local)
    server = LlamaServer(gguf, threads=local.llm_threads, n_ctx=local.llm_ctx)
    t = time.perf_counter()
    await server.start()
    print(f"LLM  server up in {time.perf_counter() - t:.2f} s ({gguf.name})")
    client = AsyncOpenAI(base_url=server.base_url, api_key="local")
    messages = [
        {"role": "system", "content": settings.agent.system_prompt},
        {"role": "user", "content": "Do you have anything open next Tuesday afternoon?"},
    ]

    async def one() -> tuple[float, float, int]:
        t0 = time.perf_counter()
        first = None
        tokens = 0
        stream = await client.chat.completions.create(
            model=gguf.stem, messages=messages, stream=True, max_tokens=60, temperature=0.0
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                tokens += 1
                if first is None:
                    first = time.perf_counter() - t0
        return first or float("nan"), time.perf_counter() - t0, tokens

    try:
        cold, total, tokens = await one()
        print(f"LLM  TTFT cold {cold * 1000:.0f} ms")
        warm = []
        rates = []
        for _ in range(3):
            ttft, total, tokens = await one()
            warm.append(ttft)
            rates.append(tokens / max(1e-6, total - ttft))
        print(
            f"LLM  TTFT warm p50 {statistics.median(warm) * 1000:.0f} ms, "
            f"{statistics.median(rates):.0f} tokens/s"
        )
    finally:
        await client.close()
        await server.stop()


def bench_tts(voice) -> None:
    times = []
    rtfs = []
    for _ in range(3):
        t = time.perf_counter()
        first = None
        samples = 0
        rate = voice.config.sample_rate
        for chunk in voice.synthesize(SENTENCE):
            if first is None:
                first = time.perf_counter() - t
            samples += len(chunk.audio_int16_bytes) // 2
        total = time.perf_counter() - t
        times.append(first)
        rtfs.append(total / (samples / rate))
    print(
        f"TTS  first audio p50 {statistics.median(times) * 1000:.0f} ms, "
        f"RTF {statistics.median(rtfs):.3f}"
    )


async def bench_demo() -> None:
    from voiceagent.demo import run_demo

    ns = argparse.Namespace(out="/tmp/voiceagent-bench-heard.wav", port=0)
    await run_demo(ns)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--skip-demo", action="store_true")
    args = parser.parse_args()
    from piper import PiperVoice

    from voiceagent.services.local.weights import resolve_piper_voice

    settings = Settings.from_env()
    print(f"machine: {os.cpu_count()} cores; numpy {np.__version__}")
    model, config = resolve_piper_voice(settings.local)
    voice = PiperVoice.load(str(model), config_path=str(config))
    bench_tts(voice)
    bench_stt(settings, phone_speech_16k(voice))
    asyncio.run(bench_llm(settings))
    if not args.skip_demo:
        asyncio.run(bench_demo())


if __name__ == "__main__":
    main()
