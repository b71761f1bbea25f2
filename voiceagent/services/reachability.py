"""Startup checks of the cloud endpoints: the URL's shape, and whether anything answers there.

A malformed URL is a configuration error; silence is a warning (the network may come back, and
fallbacks cover the calls meanwhile). Only a TCP connection is opened, no request is sent:
nothing is billed or logged by the provider, and a wrong host or port (the usual typo) shows
as refused, unknown or silent.
"""

from __future__ import annotations

import asyncio
import os
import socket
from urllib.parse import urlsplit

from loguru import logger

from voiceagent.settings import Settings

PROBE_TIMEOUT_S = 2.0
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def check_url(url: str, schemes: tuple[str, ...], name: str, example: str) -> str | None:
    """Why ``url`` cannot be a base URL of ``name`` (None when its shape is fine)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        return f"{name} {url!r} is not a URL ({e}); expected e.g. {example}"
    if parts.scheme not in schemes or not parts.hostname:
        wanted = " or ".join(f"{s}://" for s in schemes)
        return f"{name} {url!r} must start with {wanted} and name a host, e.g. {example}"
    if port == 0:
        return f"{name} {url!r} has port 0"
    return None


async def probe(url: str, timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
    """Why nothing answers a TCP connection at ``url``'s host and port (None: it connected)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or _DEFAULT_PORTS.get(parts.scheme, 443)
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    except TimeoutError:
        return f"no answer from {host}:{port} within {timeout_s:.0f} s"
    except socket.gaierror as e:
        return f"{host}: {e.strerror or e}"
    except OSError as e:
        return f"{host}:{port}: {os.strerror(e.errno) if e.errno else e}"
    writer.close()
    return None


async def warn_unreachable(settings: Settings) -> list[str]:
    """Probe the cloud endpoints the configured stages use; log a warning for each silent one.

    Returns:
        The warnings logged.
    """
    from voiceagent.pipelines.resources import choose_stages

    choice = choose_stages(settings)
    cloud = settings.cloud
    targets: dict[str, str] = {}
    if any("openai" in choice.chain(stage) for stage in ("llm",)) and cloud.openai_base_url:
        targets["OPENAI_BASE_URL"] = cloud.openai_base_url
    if any("deepgram" in choice.chain(stage) for stage in ("stt", "tts")):
        targets["VOICEAGENT_CLOUD__DEEPGRAM_URL"] = cloud.deepgram_url
    results = await asyncio.gather(*(probe(url) for url in targets.values()))
    warnings = []
    for (name, url), problem in zip(targets.items(), results, strict=True):
        if problem is not None:
            warning = (
                f"{name}={url} is not reachable now ({problem}); calls will use the fallback "
                "providers (or fail over to them) until it is"
            )
            logger.warning(warning)
            warnings.append(warning)
    return warnings
