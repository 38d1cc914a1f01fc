"""Python client helper for the coordinator's global locks (`GET /v1/locks/<name>`).

    from coordinator.locks_client import LocksClient
    with LocksClient(["http://127.0.0.1:8787"]) as locks:
        st = locks.get("email-sender")
        if st.held and st.remaining() > 0.5:
            do_work(fencing_token=st.term)   # the resource rejects terms below the highest seen

Contract:

* `LockState.valid_until` is on THIS process's monotonic clock and counts from the moment
  the request was SENT (never from the receive time), so it never overstates the hold;
* several coordinator URLs may be given (the replicas of one DC): `get` asks each in turn
  and returns the first answer that holds, else the last answer it got; a replica that
  does not answer is skipped; `LockUnavailable` when none answers;
* `wait` long-polls (`?index=&wait=`): it returns when the lock's answer index moves past
  `index` or after `wait` seconds, like Consul's blocking queries (a return is no promise
  of a change).

The term is the fencing token: a resource that records the highest term it accepted and
rejects lower ones can never be written by a deposed holder after a newer one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx


class LockUnavailable(RuntimeError):
    """No coordinator URL gave a usable answer."""


@dataclass(frozen=True)
class LockState:
    name: str
    held: bool
    """This DC's coordinator holds the lock now."""
    holder: str | None
    term: int | None
    """Fencing token (set when held; else the term of the holder the registers name, if any)."""
    valid_for: float
    """Seconds the hold lasts from the send time of the request (0 when not held)."""
    index: int
    dc: str | None
    sent_at: float
    """Monotonic time (this process) when the request was sent."""

    @property
    def valid_until(self) -> float:
        return self.sent_at + self.valid_for if self.held else self.sent_at

    def remaining(self, now: float | None = None) -> float:
        """Seconds left of the hold at `now` (monotonic; default: now). <= 0: do not act."""
        return self.valid_until - (time.monotonic() if now is None else now)


def parse_lock_body(name: str, body: dict[str, Any], sent_at: float) -> LockState:
    """Decode a `GET /v1/locks/<name>` JSON body (200 held / 503 not held)."""
    held = body.get("held") is True
    term = body.get("term")
    holder = body.get("holder")
    valid_ms = body.get("valid_for_ms", 0)
    index = body.get("index", 0)
    dc = body.get("dc")
    return LockState(
        name=name,
        held=held,
        holder=holder if isinstance(holder, str) else None,
        term=term if isinstance(term, int) and not isinstance(term, bool) else None,
        valid_for=max(float(valid_ms), 0.0) / 1000.0 if held and isinstance(valid_ms, int | float) else 0.0,
        index=index if isinstance(index, int) else 0,
        dc=dc if isinstance(dc, str) else None,
        sent_at=sent_at,
    )


class LocksClient:
    """Synchronous helper (httpx). One instance per thread."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        timeout: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not urls:
            raise ValueError("at least one coordinator URL is needed")
        self.urls = [u.rstrip("/") for u in urls]
        self.timeout = timeout
        self.clock = clock
        self.http = httpx.Client(trust_env=False, timeout=timeout)

    def get(self, name: str, *, index: int = 0, wait: float | None = None) -> LockState:
        last: LockState | None = None
        for url in self.urls:
            st = self._one(url, name, index, wait)
            if st is None:
                continue
            if st.held:
                return st
            last = st
        if last is None:
            raise LockUnavailable(f"no coordinator answered for lock {name!r}")
        return last

    def wait_held(self, name: str, timeout: float, *, poll_wait: float = 5.0) -> LockState | None:
        """Block until this DC holds `name` (returns the state) or `timeout` passes (None)."""
        deadline = self.clock() + timeout
        index = 0
        while self.clock() < deadline:
            try:
                st = self.get(name, index=index, wait=min(poll_wait, max(deadline - self.clock(), 0.01)))
            except LockUnavailable:
                time.sleep(0.1)
                continue
            if st.held and st.remaining(self.clock()) > 0:
                return st
            index = st.index
        return None

    def _one(self, url: str, name: str, index: int, wait: float | None) -> LockState | None:
        params: dict[str, str] = {}
        timeout = self.timeout
        if index and wait is not None:
            params = {"index": str(index), "wait": f"{max(wait, 0.001):.3f}s"}
            timeout += wait + wait / 16
        sent_at = self.clock()
        try:
            resp = self.http.get(f"{url}/v1/locks/{quote(name, safe='')}", params=params, timeout=timeout)
            body = resp.json()
        except (httpx.HTTPError, ValueError):
            return None
        if resp.status_code not in (200, 503) or not isinstance(body, dict):
            return None
        return parse_lock_body(name, body, sent_at)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> LocksClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
