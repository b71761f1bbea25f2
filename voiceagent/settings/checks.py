"""Offline checks of the settings in effect: what ``voiceagent config`` can tell without a network.

Each check says ``ok``, ``warn`` (works, but probably not what was meant) or ``fail`` (a call or
the server would fail on it). Nothing is contacted and no model is loaded: URLs are parsed, the
keys of the chosen providers looked for, model files found in their packages' metadata (without
importing the packages or hashing the files: the server does that at startup).
"""

from __future__ import annotations

import fnmatch
import importlib.metadata
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from voiceagent.settings.masking import mask_url
from voiceagent.settings.root import Settings

Status = Literal["ok", "warn", "fail"]
_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
_HOST = re.compile(r"^[A-Za-z0-9.\-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")


@dataclass(frozen=True)
class Check:
    """One check: its status, what was checked, and what was found."""

    status: Status
    what: str
    detail: str


def run_checks(settings: Settings) -> list[Check]:
    """Every offline check of ``settings``, in the order they are printed."""
    return [
        *_stages(settings),
        *_urls(settings),
        *_model_files(settings),
        *_server(settings),
        *_twilio(settings),
    ]


def _stages(settings: Settings) -> Iterator[Check]:
    from voiceagent.pipelines.resources import choose_stages

    try:
        choice = choose_stages(settings)
    except ValueError as e:
        yield Check("fail", "providers", str(e))
        return
    yield Check("ok", "providers", "; ".join(choice.reasons))


def _urls(settings: Settings) -> Iterator[Check]:
    from voiceagent.services.reachability import check_url

    cloud = settings.cloud
    urls = [
        ("VOICEAGENT_CLOUD__DEEPGRAM_URL", cloud.deepgram_url, ("ws", "wss")),
        ("VOICEAGENT_TWILIO__API_BASE_URL", settings.twilio.api_base_url, ("http", "https")),
    ]
    if cloud.openai_base_url:
        urls.append(("OPENAI_BASE_URL", cloud.openai_base_url, ("http", "https")))
    for name, url, schemes in urls:
        problem = check_url(url, schemes, name, f"{schemes[-1]}://host")
        yield Check("fail" if problem else "ok", name, problem or f"{url} parses")
    if settings.storage.url:
        yield _database_url(settings.storage.url)


def _database_url(url: str) -> Check:
    shown = mask_url(url)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (a bad port raises here)
    except ValueError as e:
        return Check("fail", "VOICEAGENT_STORAGE__URL", f"{shown} is not a URL ({e})")
    if not parts.hostname or not parts.path.strip("/"):
        detail = f"{shown} must name a host and a database: postgresql://user:pw@host:5432/db"
        return Check("fail", "VOICEAGENT_STORAGE__URL", detail)
    return Check("ok", "VOICEAGENT_STORAGE__URL", f"{shown} parses")


def _model_files(settings: Settings) -> Iterator[Check]:
    """The local models of the stages that may run locally (primary or fallback)."""
    from voiceagent.pipelines.resources import choose_stages
    from voiceagent.services.local import weight_packages as packages

    try:
        choice = choose_stages(settings)
    except ValueError:
        return  # said by the providers check
    local = settings.local
    if "local" in choice.chain("stt"):
        if local.whisper_model_path is not None:
            yield _override("whisper_model_path", Path(local.whisper_model_path) / "model.bin")
        elif local.whisper_model == "tiny.en":
            yield _packaged("Whisper tiny.en", [packages.TINY_EN])
        else:
            parts = [p for pinned in packages.WHISPER_BASE_FILES for p in pinned.parts]
            yield _packaged("Whisper base", parts)
    if "local" in choice.chain("llm"):
        if local.llm_model_path is not None:
            yield _override("llm_model_path", Path(local.llm_model_path))
        else:
            yield _packaged(f"LLM {local.llm_model}", packages.LLM_FILES[local.llm_model].parts)
        yield _distribution("llama-cpp-python", "the local LLM server")
    if "local" in choice.chain("tts"):
        if local.piper_model_path is not None:
            yield _override("piper_model_path", Path(local.piper_model_path))
        else:
            yield _packaged("Piper voice", [packages.PIPER_MODEL, packages.PIPER_CONFIG])


def _override(field: str, path: Path) -> Check:
    name = f"VOICEAGENT_LOCAL__{field.upper()}"
    if path.expanduser().is_file():
        return Check("ok", name, f"{path} found")
    return Check("fail", name, f"{path} does not exist or is not a file")


def _packaged(what: str, items: list) -> Check:
    """Each item's file listed in its distribution's metadata and present on disk.

    ``weights.locate`` does the same lookup but logs each miss as an error: here a miss is one
    check line, said once.
    """
    missing = []
    for item in items:
        try:
            files = importlib.metadata.distribution(item.dist).files or []
        except importlib.metadata.PackageNotFoundError:
            missing.append(f"package {item.dist} is not installed")
            continue
        pattern = f"{item.module}/{item.relpath}"
        present = [
            f for f in files if fnmatch.fnmatch(str(f), pattern) or str(f).startswith(pattern + "/")
        ]
        if not present or not all(Path(str(f.locate())).exists() for f in present):
            missing.append(f"package {item.dist} lacks {item.relpath}")
    if missing:
        return Check("fail", what, "; ".join(missing) + " (pip install 'voiceagent[offline]')")
    return Check("ok", what, "found (SHA-256 checked at startup)")


def _distribution(name: str, what: str) -> Check:
    try:
        version = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return Check("fail", name, f"not installed ({what}: pip install 'voiceagent[offline]')")
    return Check("ok", name, f"{version} installed ({what})")


def _server(settings: Settings) -> Iterator[Check]:
    from voiceagent.server.app import is_loopback_host

    server = settings.server
    if server.public_host:
        yield _public_host(server.public_host)
    elif not is_loopback_host(server.host):
        yield Check(
            "warn",
            "PUBLIC_HOST",
            "unset: TwiML names the host each request came to (X-Forwarded-Host behind a proxy)",
        )
    if server.twilio_auth_token:
        yield Check("ok", "TWILIO_AUTH_TOKEN", "set: Twilio's signatures are checked")
    elif is_loopback_host(server.host):
        yield Check("warn", "TWILIO_AUTH_TOKEN", "unset: signatures are not checked (loopback)")
    elif not server.insecure:
        detail = f"unset: serve refuses to listen on {server.host} without it (or --insecure)"
        yield Check("fail", "TWILIO_AUTH_TOKEN", detail)
    else:
        yield Check("warn", "TWILIO_AUTH_TOKEN", f"unset: anyone can call {server.host}")


def _public_host(value: str) -> Check:
    from voiceagent.server.signature import normalize_host

    host = normalize_host(value)
    if not _HOST.match(host):
        return Check(
            "fail", "PUBLIC_HOST", f"{value!r} is not a host name[:port], e.g. agent.example.com"
        )
    if host != value.strip():
        return Check("warn", "PUBLIC_HOST", f"{value!r} is used as {host!r} (a bare host suffices)")
    return Check("ok", "PUBLIC_HOST", f"{host}: TwiML streams to wss://{host}/media")


def _twilio(settings: Settings) -> Iterator[Check]:
    from voiceagent.telephony.numbers import InvalidNumberError, normalize_e164

    sid = settings.twilio.account_sid
    if sid and not _SID.match(sid):
        yield Check("warn", "TWILIO_ACCOUNT_SID", f"{sid!r} is not AC followed by 32 hex digits")
    number = settings.telephony.from_number
    if number:
        try:
            normalize_e164(number)
        except InvalidNumberError as e:
            yield Check("fail", "TWILIO_FROM_NUMBER", str(e))
        else:
            yield Check("ok", "TWILIO_FROM_NUMBER", f"{number} is an E.164 number")
    if settings.telephony.transfer_targets and not (sid and settings.server.twilio_auth_token):
        yield Check(
            "fail",
            "VOICEAGENT_TELEPHONY__TRANSFER_TARGETS",
            "transfers need TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN (the REST API)",
        )
