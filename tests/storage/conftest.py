"""The call store's backends for the storage tests: SQLite in a temporary folder, and a fresh
database on a real PostgreSQL server (``postgres_url``, tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from voiceagent.settings import StorageSettings


@pytest.fixture(params=["sqlite", "postgres"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> StorageSettings:
    """Storage settings on each backend (recordings in a temporary folder either way)."""
    if request.param == "sqlite":
        return StorageSettings(dir=tmp_path)
    return StorageSettings(dir=tmp_path, url=request.getfixturevalue("postgres_url"))
