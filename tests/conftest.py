"""Suite-wide: no test writes into the real ``~/.local/share/voiceagent``."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _storage_in_tmp(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Point ``XDG_DATA_HOME`` (the default storage folder's base) at a fresh temp folder."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("xdg-data")))


@pytest.fixture(autouse=True, scope="session")
def _voiceagent_logs_on():
    """The suite is the application here: it turns voiceagent's (library-disabled) logs on."""
    from loguru import logger

    logger.enable("voiceagent")
    yield
