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
