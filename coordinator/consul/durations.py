"""Go duration strings, as Consul reads and writes them (TTL, LockDelay, wait, Interval).

`format_duration` renders seconds as a string Go's `time.ParseDuration` accepts exactly
("10s", "1.5s", "0s"); `parse_go_duration` reads one back into seconds. Both are pure.
"""

from __future__ import annotations

import math
import re

_UNITS: dict[str, float] = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,  # Go accepts both the micro sign and the Greek mu
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_PART = re.compile(r"([0-9]+\.?[0-9]*|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h)")


def format_duration(seconds: float) -> str:
    """Render non-negative `seconds` as a Go duration string with nanosecond precision.

    Whole seconds render as "10s", fractions as "1.5s" (never exponent notation), zero as
    "0s". Raises ValueError for negative, NaN or infinite input.
    """
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"duration must be a finite number >= 0, got {seconds!r}")
    nanos = round(seconds * 1_000_000_000)
    whole, frac = divmod(nanos, 1_000_000_000)
    if frac == 0:
        return f"{whole}s"
    return f"{whole}.{frac:09d}".rstrip("0") + "s"


def parse_go_duration(text: str) -> float:
    """Parse a Go duration string ("30s", "1m30s", "1.5h", "-2s", "0") into seconds.

    Raises ValueError if `text` is not a Go duration.
    """
    s = text.strip()
    sign = 1.0
    if s[:1] in ("+", "-"):
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    if s == "0":
        return 0.0
    if not s:
        raise ValueError(f"invalid duration {text!r}")
    pos = 0
    total = 0.0
    while pos < len(s):
        m = _PART.match(s, pos)
        if m is None:
            raise ValueError(f"invalid duration {text!r}")
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    return sign * total
