"""Parsing of ?index=&wait= the way Consul reads blocking-query parameters."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coordinator.daemon.blocking import DEFAULT_WAIT, MAX_WAIT, Blocking, BlockingParamError, parse_blocking


def test_no_index_or_index_zero_never_blocks() -> None:
    assert parse_blocking({}) is None
    assert parse_blocking({"wait": "30s"}) is None
    assert parse_blocking({"index": "0", "wait": "30s"}) is None


@pytest.mark.parametrize(
    ("wait", "seconds"),
    [
        ("30s", 30.0),
        ("1m30s", 90.0),
        ("250ms", 0.25),
        ("0", DEFAULT_WAIT),
        ("0s", DEFAULT_WAIT),
        ("20m", MAX_WAIT),
    ],
)
def test_wait_is_a_go_duration_clamped_to_ten_minutes(wait: str, seconds: float) -> None:
    assert parse_blocking({"index": "7", "wait": wait}) == Blocking(index=7, wait=seconds)


def test_missing_wait_means_five_minutes() -> None:
    assert parse_blocking({"index": "3"}) == Blocking(index=3, wait=DEFAULT_WAIT)


@pytest.mark.parametrize(
    "query", [{"index": "x"}, {"index": "-2"}, {"index": " 1"}, {"index": "1", "wait": "5"}]
)
def test_malformed_values_raise(query: dict[str, str]) -> None:
    with pytest.raises(BlockingParamError):
        parse_blocking(query)


@given(st.text(max_size=12))
def test_any_wait_text_either_parses_within_bounds_or_raises(text: str) -> None:
    try:
        result = parse_blocking({"index": "1", "wait": text})
    except BlockingParamError:
        return
    assert result is not None and 0 < result.wait <= MAX_WAIT
