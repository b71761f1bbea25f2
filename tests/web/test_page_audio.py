"""The page's audio code, run in Chromium: the μ-law codec against voiceagent's own (bit for bit)
and the resampler both worklets use (passband kept, aliases and images removed, blocks seamless).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.server.server_harness import serving, settings_for
from voiceagent.transports.twilio.codec import pcm16_to_ulaw, ulaw_to_pcm16

from .softphone_browser import chromium, require_chromium

pytestmark = pytest.mark.slow


async def _no_pipeline(call: Any, settings: Any) -> list:
    return []


@pytest.fixture
async def page(tmp_path: Path) -> AsyncIterator[Any]:
    """The softphone page, loaded from the real server (its modules import from there)."""
    require_chromium()
    settings = settings_for()
    settings = settings.model_copy(
        update={"storage": settings.storage.model_copy(update={"enabled": False})}
    )
    async with serving(settings, _no_pipeline) as client, chromium(tmp_path) as page:
        await page.goto(f"http://127.0.0.1:{client.port}/phone")
        yield page


async def test_the_pages_mulaw_codec_is_voiceagents_bit_for_bit(page: Any) -> None:
    encoded = await page.evaluate(
        """async () => {
            const line = await import('/phone/static/line.js');
            const all = new Int16Array(65536);
            for (let i = 0; i < 65536; i++) all[i] = i - 32768;
            const codes = new Uint8Array(256);
            for (let i = 0; i < 256; i++) codes[i] = i;
            return {
                encoded: Array.from(line.ulawEncode(all)),
                decoded: Array.from(line.ulawDecode(codes)),
                wide: Array.from(line.pcm16Encode(new Int16Array([1, -2, 32767, -32768]))),
            };
        }"""
    )
    samples = np.arange(-32768, 32768, dtype="<i2").tobytes()
    assert bytes(encoded["encoded"]) == pcm16_to_ulaw(samples)
    assert np.array_equal(
        np.array(encoded["decoded"], dtype=np.int16),
        np.frombuffer(ulaw_to_pcm16(bytes(range(256))), "<i2"),
    )
    assert bytes(encoded["wide"]) == np.array([1, -2, 32767, -32768], "<i2").tobytes()


RESAMPLE = """async ([inRate, outRate, hz, seconds, block]) => {
    const { Resampler } = await import('/phone/static/resampler.js');
    const n = Math.round(inRate * seconds);
    const input = new Float32Array(n);
    for (let i = 0; i < n; i++) input[i] = 0.5 * Math.sin(2 * Math.PI * hz * i / inRate);
    const run = (size) => {
        const r = new Resampler(inRate, outRate);
        const parts = [];
        for (let i = 0; i < n; i += size) parts.push(r.process(input.subarray(i, i + size)));
        const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
        let at = 0;
        for (const p of parts) { out.set(p, at); at += p.length; }
        return out;
    };
    const whole = run(n), blocks = run(block);
    return { whole: Array.from(whole), blocks: Array.from(blocks) };
}"""


def _rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(samples**2)))


async def resample(page: Any, in_rate: int, out_rate: int, hz: float, block: int = 128):
    result = await page.evaluate(RESAMPLE, [in_rate, out_rate, hz, 0.5, block])
    whole = np.array(result["whole"])
    blocks = np.array(result["blocks"])
    # Blocks may hold the last sample back until the next block comes (float rounding of the
    # read position): the streams agree sample for sample on what both produced.
    assert abs(len(whole) - len(blocks)) <= 1
    common = min(len(whole), len(blocks))
    return whole[:common], blocks[:common]


@pytest.mark.parametrize(("in_rate", "out_rate"), [(48000, 8000), (44100, 16000), (48000, 16000)])
async def test_the_microphone_goes_down_to_the_line_rate_without_aliases(
    page: Any, in_rate: int, out_rate: int
) -> None:
    kept, blocks = await resample(page, in_rate, out_rate, 1000.0)
    assert np.allclose(kept, blocks, atol=1e-6)  # 128-sample render blocks: no seams
    assert abs(len(kept) - 0.5 * out_rate) <= 0.01 * out_rate  # less the filter's few ms
    steady = kept[len(kept) // 5 : -len(kept) // 5]
    assert abs(_rms(steady) - 0.5 / np.sqrt(2)) < 0.005  # the 1 kHz voice band is kept
    # A tone above the line's Nyquist frequency would fold back into the band: it is removed.
    folded, _ = await resample(page, in_rate, out_rate, out_rate * 0.5 + 1500.0)
    assert _rms(folded[len(folded) // 5 : -len(folded) // 5]) < 0.5 / np.sqrt(2) * 0.003


@pytest.mark.parametrize(("in_rate", "out_rate"), [(8000, 48000), (16000, 44100)])
async def test_the_agents_line_audio_goes_up_to_the_speaker_rate_without_images(
    page: Any, in_rate: int, out_rate: int
) -> None:
    up, blocks = await resample(page, in_rate, out_rate, 1000.0, block=160)
    assert np.allclose(up, blocks, atol=1e-6)
    steady = up[len(up) // 5 : -len(up) // 5]
    assert abs(_rms(steady) - 0.5 / np.sqrt(2)) < 0.005
    spectrum = np.abs(np.fft.rfft(steady * np.hanning(len(steady)))) ** 2
    freqs = np.fft.rfftfreq(len(steady), 1.0 / out_rate)
    image = spectrum[(freqs > in_rate - 1100) & (freqs < in_rate - 900)].sum()
    assert image < 1e-5 * spectrum[(freqs > 900) & (freqs < 1100)].sum()


PLAYBACK = """async () => {
    const context = new AudioContext();
    await context.audioWorklet.addModule('/phone/static/playback-worklet.js');
    await context.resume();
    const node = new AudioWorkletNode(context, 'softphone-playback', {
        processorOptions: { lineRate: 8000 }, outputChannelCount: [1],
    });
    node.connect(context.destination);
    const t0 = performance.now();
    const seen = [];
    node.port.onmessage = (e) => {
        if (e.data.type !== 'status') seen.push({ ...e.data, at: performance.now() - t0 });
    };
    const tone = (ms) => {
        const samples = new Int16Array(8 * ms);
        for (let i = 0; i < samples.length; i++) samples[i] = 8000 * Math.sin(i / 3);
        return samples;
    };
    const wait = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
    const until = async (check, what) => {
        const deadline = performance.now() + 5000;
        while (!check()) {
            if (performance.now() > deadline) throw new Error(`no ${what}: ${seen.length}`);
            await wait(10);
        }
    };
    // A 400 ms segment and its mark: the echo waits for the audio to play.
    for (let i = 0; i < 20; i++) node.port.postMessage({ type: 'audio', samples: tone(20) });
    node.port.postMessage({ type: 'mark', name: 'a1.1' });
    await until(() => seen.some((m) => m.name === 'a1.1'), 'echo of a1.1');
    await until(() => seen.some((m) => m.type === 'idle'), 'end of the first segment');
    // A 1 s segment, cut 200 ms in: `clear` empties the buffer and echoes the pending mark.
    for (let i = 0; i < 50; i++) node.port.postMessage({ type: 'audio', samples: tone(20) });
    node.port.postMessage({ type: 'mark', name: 'a2.1' });
    await until(() => seen.filter((m) => m.type === 'playing').length >= 2, 'second segment');
    await wait(200);
    const clearAt = performance.now() - t0;
    node.port.postMessage({ type: 'clear' });
    await until(() => seen.some((m) => m.type === 'cleared'), 'cleared');
    await wait(300);
    await context.close();
    return { seen, clearAt };
}"""


async def test_the_playback_buffer_echoes_marks_once_played_and_empties_on_clear(
    page: Any,
) -> None:
    result = await page.evaluate(PLAYBACK)
    seen, clear_at = result["seen"], result["clearAt"]
    by = {m.get("name") or m["type"]: m for m in seen}
    first = next(m for m in seen if m["type"] == "playing")
    # Never early: the mark comes back only after its 400 ms of audio played — on the audio
    # clock (the page's clock times messages as the main thread gets to them: tens of ms late
    # on a busy machine, and not equally late for every message).
    assert first["playedMs"] == 0
    assert 395 <= by["a1.1"]["playedMs"] < 400 + 3 + 20  # the filter's delay, a render burst
    assert by["a1.1"]["at"] - first["at"] >= 250  # and on the page, give or take its lag
    # The clear: the pending mark echoed at once (Twilio does the same; it proves nothing),
    # about 800 ms of the 1 s segment dropped, and the agent silent from then on.
    assert by["a2.1"]["at"] - clear_at < 100
    assert 600 < by["cleared"]["droppedMs"] < 900 and by["cleared"]["marks"] == 1
    after = [m["type"] for m in seen if m["at"] >= by["cleared"]["at"]]
    assert "playing" not in after
