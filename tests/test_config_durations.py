"""Consul/Go-style duration strings: parsing, rejection and formatting."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coordinator.config import DurationError, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0.0),
        ("0s", 0.0),
        ("500ms", 0.5),
        ("1.5s", 1.5),
        ("2m", 120.0),
        ("1h", 3600.0),
        ("1m30s", 90.0),
        ("1h2m3.5s", 3723.5),
        (".5s", 0.5),
        ("1.s", 1.0),
        ("250us", 0.00025),
        ("250µs", 0.00025),
        ("100ns", 1e-7),
        ("+3s", 3.0),
        ("-1.5s", -1.5),
        (" 2s ", 2.0),
    ],
)
def test_parses(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty duration"),
        ("1.5", "missing unit in duration '1.5'"),
        ("10", "missing unit in duration '10'"),
        ("fast", "not a duration: 'fast'"),
        ("5x", "unknown unit 'x'"),
        ("1.5 s", "not a duration: '1.5 s'"),
        ("s", "not a duration: 's'"),
        ("1s2", "not a duration: '1s2'"),
        ("--1s", "not a duration: '--1s'"),
        ("1d", "unknown unit 'd'"),
    ],
)
def test_rejects(text: str, message: str) -> None:
    with pytest.raises(DurationError) as info:
        parse_duration(text)
    assert message in str(info.value)


@given(st.floats(min_value=0.0, max_value=1e9, allow_nan=False))
def test_seconds_format_parses_back(x: float) -> None:
    assert math.isclose(parse_duration(f"{x:f}s"), x, rel_tol=1e-9, abs_tol=1e-6)
    assert math.isclose(parse_duration(f"{x:.17f}s"), x, rel_tol=1e-12, abs_tol=1e-15)


@given(st.floats(min_value=0.0, max_value=1e9, allow_nan=False))
def test_milliseconds_format_parses_back(x: float) -> None:
    assert math.isclose(parse_duration(f"{x * 1000:f}ms"), x, rel_tol=1e-9, abs_tol=1e-9)


@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e15, max_value=1e15))
def test_format_duration_is_exact(x: float) -> None:
    text = format_duration(x)
    assert "e" not in text
    assert parse_duration(text) == x


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "0s"),
        (0.4, "400ms"),
        (0.5, "500ms"),
        (1.5, "1.5s"),
        (10.0, "10s"),
        (90.0, "90s"),
        (120.0, "2m"),
        (7200.0, "2h"),
        (0.025, "25ms"),
    ],
)
def test_format_duration_is_readable(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_format_duration_refuses_non_finite() -> None:
    with pytest.raises(ValueError):
        format_duration(math.inf)
