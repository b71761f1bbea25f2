"""The demo's closing line: latency percentiles of the answered turns."""

import pytest

from voiceagent.demo import latency_summary


def test_percentiles_interpolate_between_the_turns():
    # Four answered turns: p50 halfway between 600 and 700, p90 nine tenths of the way to 1000.
    assert latency_summary([700, 500, 1000, 600]) == "latency p50 650 ms, p90 910 ms over 4 turns"


def test_one_turn_is_its_own_p50_and_p90():
    assert latency_summary([812.4]) == "latency p50 812 ms, p90 812 ms over 1 turns"


def test_no_turns_is_refused():
    with pytest.raises(ValueError):
        latency_summary([])
