"""Secrets in settings shown to people: auth tokens, API keys, link secrets, URL passwords."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

_SECRET_ENDINGS = ("token", "api_key", "secret", "password")
MASK = "****"


def is_secret(name: str) -> bool:
    """Whether a setting or variable named ``name`` holds a secret (``TWILIO_AUTH_TOKEN``...)."""
    return name.lower().endswith(_SECRET_ENDINGS)  # not max_tokens


def mask_secret(value: str) -> str:
    """``sk-abcdef123456789`` → ``****6789``: enough to tell two keys apart, not to use one."""
    return f"{MASK}{value[-4:]}" if len(value) >= 16 else MASK


def mask_url(url: str) -> str:
    """``postgresql://user:pw@host/db`` → ``postgresql://user:****@host/db`` (others unchanged)."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url
    if not password:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{host}"))


def masked(name: str, value: str) -> str:
    """``value`` of the setting or variable ``name`` as it may be shown."""
    if is_secret(name):
        return mask_secret(value)
    return mask_url(value) if "://" in value else value
