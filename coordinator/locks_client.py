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
  (the DC leader's URL first, once known) and returns the first answer that holds, else
  the leader's answer, else the last one it got; a replica that does not answer is
  skipped; `LockUnavailable` when none answers;
* `get(index=, wait=)` long-polls (`?index=&wait=`) the replica whose answer gave `index`
  (an index means nothing to another replica; with one URL, that URL; with several and
  no earlier answer, it asks them all without blocking). Only the DC leader can hold, and each
  answer names its replica and its DC leader, so the client long-polls the leader: when
  the replica it polls says it is not (or no longer) the leader, or does not answer, it
  asks every URL at once without blocking instead. A long-poll returns when the lock's
  answer index moves past `index` or after `wait` seconds, like Consul's blocking
  queries (a return is no promise of a change).

The term is the fencing token: a resource that records the highest term it accepted and
rejects lower ones can never be written by a deposed holder after a newer one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

LEADERLESS_POLL = 1.0
"""Longest long-poll, in seconds, on a replica whose last answer named no leader or another
replica: the client looks again across all URLs that soon (a new leader may be elsewhere)."""


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
    replica: str | None = None
    """The answering replica's id (None from daemons that do not say)."""
    leader: str | None = None
    """Its DC leader's replica id as it sees it (None: unknown)."""
    url: str | None = None
    """The coordinator URL that answered (set by `LocksClient`)."""

    @property
    def from_leader(self) -> bool:
        """The answering replica says it leads its DC (only a leader can hold)."""
        return self.held or (self.replica is not None and self.replica == self.leader)

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
    replica, leader = body.get("replica"), body.get("leader")
    return LockState(
        name=name,
        held=held,
        holder=holder if isinstance(holder, str) else None,
        term=term if isinstance(term, int) and not isinstance(term, bool) else None,
        valid_for=max(float(valid_ms), 0.0) / 1000.0 if held and isinstance(valid_ms, int | float) else 0.0,
        index=index if isinstance(index, int) else 0,
        dc=dc if isinstance(dc, str) else None,
        sent_at=sent_at,
        replica=replica if isinstance(replica, str) else None,
        leader=leader if isinstance(leader, str) else None,
    )


class LocksClient:
    """Synchronous helper (httpx). One instance per thread."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        timeout: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not urls:
            raise ValueError("at least one coordinator URL is needed")
        self.urls = [u.rstrip("/") for u in urls]
        self.timeout = timeout
        self.clock = clock
        self.http = httpx.Client(trust_env=False, timeout=timeout, transport=transport)
        self._last: dict[str, LockState] = {}
        """lock name -> the answer `get` returned last (its URL is long-polled next)."""

    def get(self, name: str, *, index: int = 0, wait: float | None = None) -> LockState:
        """This DC's answer for lock `name`; a long-poll when `index` and `wait` are given
        (see the module docstring for which replica is asked)."""
        prev = self._last.get(name)
        polled = prev.url if prev is not None else (self.urls[0] if len(self.urls) == 1 else None)
        if index and wait is not None and polled is not None:
            if prev is not None and not prev.from_leader and prev.replica is not None:
                wait = min(wait, LEADERLESS_POLL)
            st = self._one(polled, name, index, wait)
            if st is not None and (st.from_leader or (st.replica is None and st.leader is None)):
                return self._keep(name, st)
        last: LockState | None = None
        leader: LockState | None = None
        for url in self._order(name):
            st = self._one(url, name, 0, None)
            if st is None:
                continue
            if st.held:
                return self._keep(name, st)
            if st.from_leader and leader is None:
                leader = st
            last = st
        if last is None:
            raise LockUnavailable(f"no coordinator answered for lock {name!r}")
        return self._keep(name, leader or last)

    def _order(self, name: str) -> list[str]:
        prev = self._last.get(name)
        first = prev.url if prev is not None else None
        if first is None or first not in self.urls:
            return list(self.urls)
        return [first, *[u for u in self.urls if u != first]]

    def _keep(self, name: str, st: LockState) -> LockState:
        """Remembers `st`: its URL is long-polled next (its index is only meaningful there)."""
        self._last[name] = st
        return st

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
        return replace(parse_lock_body(name, body, sent_at), url=url)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> LocksClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
