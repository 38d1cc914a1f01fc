"""Duration values in the topology file.

A duration is either a YAML number (seconds) or a Consul/Go-style duration string:
a sequence of decimal numbers each with a unit, e.g. "500ms", "1.5s", "2m", "1m30s".
Units: ns, us (or µs), ms, s, m, h. "0" alone needs no unit. A leading sign is accepted
(as Go's time.ParseDuration does); range checks belong to the timer rules, not here.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from fractions import Fraction

UNITS: dict[str, Fraction] = {
    "ns": Fraction(1, 10**9),
    "us": Fraction(1, 10**6),
    "µs": Fraction(1, 10**6),
    "μs": Fraction(1, 10**6),
    "ms": Fraction(1, 1000),
    "s": Fraction(1),
    "m": Fraction(60),
    "h": Fraction(3600),
}
"""Seconds per unit, exact: the sum is computed in rationals and rounded to float once."""

_TERM = re.compile(r"(\d+\.?\d*|\.\d+)([a-zµμ]+)")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)")

HINT = 'use a number of seconds or a duration like "500ms", "1.5s", "2m"'


class DurationError(ValueError):
    """The text is not a duration; `str()` says why, without the offending key."""


def parse_duration(text: str) -> float:
    """Parse a Go-style duration string into seconds.

    Raises DurationError for anything else (empty text, missing or unknown unit, junk).
    """
    s = text.strip()
    if not s:
        raise DurationError(f"empty duration ({HINT})")
    sign = 1.0
    body = s
    if body[0] in "+-":
        sign = -1.0 if body[0] == "-" else 1.0
        body = body[1:]
    if body == "0":
        return 0.0
    if _NUMBER.fullmatch(s):
        raise DurationError(f'missing unit in duration {text!r} (write e.g. "{s}s", or a bare number)')
    total = Fraction(0)
    pos = 0
    while pos < len(body):
        m = _TERM.match(body, pos)
        if m is None:
            raise DurationError(f"not a duration: {text!r} ({HINT})")
        unit = m.group(2)
        if unit not in UNITS:
            raise DurationError(f"unknown unit {unit!r} in duration {text!r} (units: ns, us, ms, s, m, h)")
        total += Fraction(m.group(1)) * UNITS[unit]
        pos = m.end()
    try:
        return sign * float(total)
    except OverflowError:
        raise DurationError(f"duration {text!r} is too large") from None


def format_duration(seconds: float) -> str:
    """Render finite seconds as a short duration string ("500ms", "1.5s", "2m").

    Exact: `parse_duration(format_duration(x)) == x` for every finite float x.
    """
    if not math.isfinite(seconds):
        raise ValueError(f"not a finite duration: {seconds!r}")
    if seconds == 0:
        return "0s"
    if seconds < 0:
        return "-" + format_duration(-seconds)
    candidates = []
    if seconds < 1:
        candidates.append(f"{_fixed(seconds * 1000)}ms")
    if seconds >= 3600 and seconds % 3600 == 0:
        candidates.append(f"{_fixed(seconds / 3600)}h")
    if seconds >= 60 and seconds % 60 == 0:
        candidates.append(f"{_fixed(seconds / 60)}m")
    candidates.append(f"{_fixed(seconds)}s")
    for text in candidates:
        if parse_duration(text) == seconds and len(text) <= len(candidates[-1]) + 2:
            return text
    return candidates[-1]


def _fixed(value: float) -> str:
    """Shortest round-tripping digits of `value`, in plain (not scientific) notation."""
    text = format(Decimal(repr(value)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text
