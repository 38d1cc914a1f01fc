"""Grant sources for `coordinator exec --global NAME`: the cross-DC `consul lock`.

Same interface and invariant as coordinator.exec_sources (``Grant.expires_at`` is never
later than what the coordinator granted), but the grant is "this DC's coordinator holds
global lock NAME": ``allowed`` = held, ``token`` = the lock's term (the global fencing
token), ``expires_at`` = the hold's end, which is already bounded by the DC's own
may-write lease.

* `GlobalApiSource` follows ``GET /v1/locks/<name>?index=&wait=`` of a coordinator;
* `GlobalReplicaSource` runs a replica in-process (like `ReplicaSource`) and reads the
  lock from its core; a poll waits on the runner's lock index
  (`Runner.wait_for_lock_change`), so it wakes on the change itself. On exit (after CMD
  was stopped) `close` shuts the replica down gracefully: it answers no at once, frees
  the lock's registers once the last "yes" it handed out has run out (plus a drift pad;
  at most one DC lease), and only then gives up its DC lock, so another DC takes over
  about one read round after that instead of ``lease + margin``.

CMD runs only in the DC whose leader holds the lock, and is stopped (TERM, then KILL)
before the hold can end, exactly as for the DC-level exec.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from urllib.parse import quote

import httpx

from coordinator.daemon.serve import RunOptions
from coordinator.exec_sources import ApiSource, Clock, Grant, ReplicaSource, SourceError
from coordinator.locks_client import parse_lock_body


def _grant(name: str, body: dict[str, object], sent_at: float) -> Grant:
    st = parse_lock_body(name, body, sent_at)
    dc = st.dc or ""
    if st.held and st.term is not None:
        return Grant(True, dc, st.index, token=st.term, expires_at=st.valid_until)
    return Grant(False, dc, st.index, reason="not-holder" if st.holder else "no-holder")


class GlobalApiSource(ApiSource):
    def __init__(self, api: str, name: str, *, clock: Clock = time.monotonic, timeout: float = 5.0) -> None:
        super().__init__(api, clock=clock, timeout=timeout)
        self.name = name

    async def _get(self, index: int, wait: float) -> Grant:
        params = {"index": str(index), "wait": f"{max(int(wait * 1000), 1)}ms"} if index > 0 else {}
        url = f"{self.api}/v1/locks/{quote(self.name, safe='')}"
        sent_at = self.clock()
        try:
            resp = await self._client.get(url, params=params, timeout=self.timeout + wait)
            body = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise SourceError(f"{url}: {type(exc).__name__}: {exc}") from None
        if resp.status_code == 404:
            raise SourceError(f"{url}: no global lock {self.name!r} is configured")
        if not isinstance(body, dict) or resp.status_code not in (200, 503):
            raise SourceError(f"{url}: HTTP {resp.status_code}")
        return _grant(self.name, body, sent_at)


class GlobalReplicaSource(ReplicaSource):
    def __init__(self, opts: RunOptions, environ: Mapping[str, str], name: str) -> None:
        super().__init__(opts, environ)
        self.name = name

    async def start(self) -> None:
        await super().start()
        runner = self._runner
        if runner is not None and runner.core.globals.lock_index(self.name) is None:  # type: ignore[attr-defined]
            raise SourceError(f"no global lock {self.name!r} in the topology's global_locks")

    async def poll(self, index: int, wait: float) -> Grant:
        runner = self._runner
        if runner is None:
            raise SourceError("replica not started")
        globals_ = runner.core.globals  # type: ignore[attr-defined]
        await runner.wait_for_lock_change(lambda: globals_.lock_index(self.name) != index, wait)
        now = runner.clock()
        ans = globals_.answer(self.name, now)
        if ans is None:
            raise SourceError(f"no global lock {self.name!r}")
        dc = self.dc or ""
        if ans.held and ans.term is not None:
            return Grant(True, dc, ans.index, token=ans.term, expires_at=now + ans.valid_for)
        return Grant(False, dc, ans.index, reason="not-holder" if ans.holder else "no-holder")
