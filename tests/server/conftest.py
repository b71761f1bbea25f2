from __future__ import annotations

import pytest
from server_harness import Factory


@pytest.fixture
def factory() -> Factory:
    return Factory()
