"""Parsing of the `?index=N&wait=D` blocking-query parameters, the way Consul reads them.

Consul semantics followed (agent/http.go parseWait, blockingQuery):

* ``wait`` is a Go duration ("30s", "5m", "1m30s", "0"); a bare number other than 0 is
  refused, as Go's ``time.ParseDuration`` refuses it;
* a wait above 10 minutes is clamped to 10 minutes; a missing or zero wait means the
  default, 5 minutes;
* ``index`` is an unsigned decimal integer; index 0 (or no index) never blocks.

Deviation, on purpose: a negative wait is refused (Consul treats it as the default).
Errors raise `BlockingParamError` with the message the API returns in a 400.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from coordinator.consul.durations import parse_go_duration

MAX_WAIT = 600.0
DEFAULT_WAIT = 300.0


class BlockingParamError(ValueError):
    """A malformed ``index`` or ``wait`` query parameter (HTTP 400)."""


@dataclass(frozen=True)
class Blocking:
    index: int
    """Block until the answer index is greater than this (0 = do not block)."""
    wait: float
    """Longest time to block, in seconds."""


def parse_wait(text: str) -> float:
    try:
        seconds = parse_go_duration(text)
    except ValueError:
        raise BlockingParamError(f"invalid wait time {text!r}: use a duration such as 30s or 5m") from None
    if seconds < 0 or not math.isfinite(seconds):
        raise BlockingParamError(f"invalid wait time {text!r}: must not be negative")
    if seconds == 0:
        return DEFAULT_WAIT
    return min(seconds, MAX_WAIT)


def parse_index(text: str) -> int:
    if not text.isascii() or not text.isdigit():
        raise BlockingParamError(f"invalid index {text!r}: must be an unsigned integer")
    return int(text)


def parse_blocking(query: Mapping[str, str]) -> Blocking | None:
    """The blocking request in `query`, or None when the request must not block."""
    wait_text = query.get("wait")
    wait = DEFAULT_WAIT if wait_text is None else parse_wait(wait_text)
    index_text = query.get("index")
    if index_text is None:
        return None
    index = parse_index(index_text)
    if index == 0:
        return None
    return Blocking(index=index, wait=wait)
