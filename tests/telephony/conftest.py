"""A fake Twilio per telephony test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from tests.telephony.accounts import ACCOUNT, OUR_NUMBER, TOKEN
from tests.telephony.fake_twilio import FakeTwilio


@pytest_asyncio.fixture
async def twilio() -> AsyncIterator[FakeTwilio]:
    async with FakeTwilio(ACCOUNT, TOKEN, numbers=(OUR_NUMBER,)) as fake:
        yield fake
