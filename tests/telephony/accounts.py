"""The fake account of the telephony tests: its sid, token and numbers."""

from __future__ import annotations

ACCOUNT = "AC" + "c" * 32
TOKEN = "telephony-test-token"
OUR_NUMBER = "+15550100100"
PERSON = "+15550100199"
FRONT_DESK = "+15550100123"
