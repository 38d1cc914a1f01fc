"""Go `time.Duration` and `strconv.ParseUint` parsing and formatting, as Consul's HTTP
layer does it.

Pure functions. Durations are carried as integer nanoseconds (like Go) so that error
messages that print a raw `time.Duration` with `%d` come out exactly as Consul's.
"""

from __future__ import annotations

import json

NS = 1
US = 1_000
MS = 1_000_000
SECOND = 1_000_000_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE

_UNITS: dict[str, int] = {
    "ns": NS,
    "us": US,
    "\u00b5s": US,
    "\u03bcs": US,
    "ms": MS,
    "s": SECOND,
    "m": MINUTE,
    "h": HOUR,
}


class DurationError(ValueError):
    """Raised with Go's exact `time.ParseDuration` error text."""


def go_quote(text: str) -> str:
    """Approximates Go's `%q` / `strconv.Quote` (exact for printable ASCII)."""
    return json.dumps(text, ensure_ascii=False)


UINT64_MAX = 2**64 - 1


class NumError(ValueError):
    """Raised with Go's exact `strconv.ParseUint` error text (`NumError.Error()`)."""


def parse_uint64(text: str) -> int:
    """Go's `strconv.ParseUint(text, 10, 64)`: ASCII digits only (no sign, no spaces),
    result <= 2^64-1. Like Go, scans left to right and fails at the first bad character
    (`invalid syntax`) or the first digit that overflows (`value out of range`), so
    "99999999999999999999x" is a range error. Raises NumError with Go's message."""
    quoted = go_quote(text)
    if not text:
        raise NumError(f"strconv.ParseUint: parsing {quoted}: invalid syntax")
    n = 0
    for ch in text:
        if not ("0" <= ch <= "9"):
            raise NumError(f"strconv.ParseUint: parsing {quoted}: invalid syntax")
        n = n * 10 + (ord(ch) - 48)
        if n > UINT64_MAX:
            raise NumError(f"strconv.ParseUint: parsing {quoted}: value out of range")
    return n


def parse_duration(text: str) -> int:
    """Parses a Go duration string ("15s", "1h30m", "1.5s", "0") into nanoseconds.

    Raises DurationError with the message Go's time.ParseDuration would produce.
    """
    orig = text
    quoted = go_quote(orig)
    neg = False
    if text and text[0] in "+-":
        neg = text[0] == "-"
        text = text[1:]
    if text == "0":
        return 0
    if not text:
        raise DurationError(f"time: invalid duration {quoted}")
    total = 0.0
    while text:
        i = 0
        while i < len(text) and text[i].isdigit():
            i += 1
        whole = text[:i]
        text = text[i:]
        frac = ""
        if text.startswith("."):
            text = text[1:]
            j = 0
            while j < len(text) and text[j].isdigit():
                j += 1
            frac = text[:j]
            text = text[j:]
        if not whole and not frac:
            raise DurationError(f"time: invalid duration {quoted}")
        k = 0
        while k < len(text) and text[k] != "." and not text[k].isdigit():
            k += 1
        unit = text[:k]
        text = text[k:]
        if not unit:
            raise DurationError(f"time: missing unit in duration {quoted}")
        if unit not in _UNITS:
            raise DurationError(f"time: unknown unit {go_quote(unit)} in duration {quoted}")
        scale = _UNITS[unit]
        value = int(whole or "0") * scale
        if frac:
            value_frac = int(frac) * scale / (10 ** len(frac))
            total += value + value_frac
        else:
            total += value
    result = int(total)
    return -result if neg else result


def _fmt_frac(value: int, prec: int) -> str:
    """Formats value / 10**prec with trailing zeros removed (Go's fmtFrac)."""
    digits = str(value).rjust(prec, "0")
    whole, frac = digits[:-prec] or "0", digits[-prec:].rstrip("0")
    return f"{whole}.{frac}" if frac else whole


def format_duration(ns: int) -> str:
    """Formats nanoseconds like Go's `Duration.String()` ("10s", "24h0m0s", "1.5s", "15ms")."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    u = abs(ns)
    if u < SECOND:
        if u < US:
            return f"{sign}{u}ns"
        if u < MS:
            return f"{sign}{_fmt_frac(u, 3)}\u00b5s"
        return f"{sign}{_fmt_frac(u, 6)}ms"
    seconds = _fmt_frac(u % MINUTE, 9) + "s"
    minutes_total = u // MINUTE
    if minutes_total == 0:
        return sign + seconds
    hours, minutes = divmod(minutes_total, 60)
    if hours == 0:
        return f"{sign}{minutes}m{seconds}"
    return f"{sign}{hours}h{minutes}m{seconds}"


def seconds_to_ns(seconds: float) -> int:
    return round(seconds * SECOND)


def ns_to_seconds(ns: int) -> float:
    return ns / SECOND
