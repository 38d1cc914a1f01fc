"""Where `coordinator exec` gets its "may I write?" answers from.

Two sources behind one interface (`GrantSource`):

* `ApiSource` follows an existing coordinator through ``GET /v1/may-write?index=&wait=``;
* `ReplicaSource` runs a replica in-process: the daemon's `Runner` driving a `ReplicaCore`
  on exec's own event loop, so it takes part in the DC's leader election exactly like
  `coordinator run` (it only serves no HTTP API).

Invariant (the one exec's safety rests on): `Grant.expires_at` is never later than the
lease the coordinator granted. `ReplicaSource` reads the core on exec's own monotonic
clock. `ApiSource` counts ``valid_for_ms`` from the moment the request was SENT (the
server computed it later than that), and when a long-poll blocked for a while it re-asks
at once without blocking, so the anchor stays fresh.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from coordinator.consul.client import AsyncConsul
from coordinator.core.topology import Topology
from coordinator.daemon.runner import Runner
from coordinator.daemon.serve import RunOptions, check_dc, discover_dc, load_settings

Clock = Callable[[], float]

STALE_ANCHOR = 0.05
"""A yes whose request was sent longer ago than this is re-fetched without blocking."""


class SourceError(Exception):
    """The answer could not be obtained (unreachable API, bad response)."""


@dataclass(frozen=True)
class Grant:
    """One may-write answer, normalised. `expires_at` is exec's monotonic clock."""

    allowed: bool
    dc: str
    index: int
    token: int | None = None
    expires_at: float = 0.0
    reason: str | None = None


class GrantSource(Protocol):
    async def start(self) -> None:
        """Become ready to answer (may raise `StartupError`)."""

    async def lease(self) -> float:
        """The configured lease in seconds (may raise SourceError)."""

    async def poll(self, index: int, wait: float) -> Grant:
        """The answer once its index moved past `index`, or after `wait` s (SourceError)."""

    async def close(self) -> None:
        """Stop; an in-process replica releases the DC leadership first."""


def _format_wait(seconds: float) -> str:
    return f"{max(int(seconds * 1000), 1)}ms"


def grant_from_json(body: Mapping[str, Any], sent_at: float) -> Grant:
    """Parse a /v1/may-write body; raises SourceError on anything unexpected."""
    allowed = body.get("allowed")
    index = body.get("index")
    if not isinstance(allowed, bool) or not isinstance(index, int):
        raise SourceError(f"malformed may-write answer: {dict(body)!r}")
    dc = str(body.get("dc") or "")
    if not allowed:
        reason = body.get("reason")
        return Grant(False, dc, index, reason=str(reason) if reason is not None else None)
    token = body.get("token")
    valid_ms = body.get("valid_for_ms")
    if not isinstance(token, int) or not isinstance(valid_ms, int):
        raise SourceError(f"malformed may-write yes: {dict(body)!r}")
    return Grant(True, dc, index, token=token, expires_at=sent_at + valid_ms / 1000.0)


class ApiSource:
    """Follows a coordinator's HTTP API."""

    def __init__(self, api: str, *, clock: Clock = time.monotonic, timeout: float = 5.0) -> None:
        self.api = api.rstrip("/")
        self.clock = clock
        self.timeout = timeout
        self._client = httpx.AsyncClient(trust_env=False)

    async def start(self) -> None:
        return None

    async def lease(self) -> float:
        try:
            resp = await self._client.get(self.api + "/v1/status", timeout=self.timeout)
            lease = resp.json()["timers"]["lease"]
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            raise SourceError(f"cannot read the lease from {self.api}/v1/status: {exc!r}") from None
        if not isinstance(lease, (int, float)) or lease <= 0:
            raise SourceError(f"{self.api}/v1/status: bad timers.lease {lease!r}")
        return float(lease)

    async def _get(self, index: int, wait: float) -> Grant:
        params = {"index": str(index), "wait": _format_wait(wait)} if index > 0 else {}
        sent_at = self.clock()
        try:
            resp = await self._client.get(
                self.api + "/v1/may-write", params=params, timeout=self.timeout + wait
            )
            body = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise SourceError(f"{self.api}/v1/may-write: {type(exc).__name__}: {exc}") from None
        if not isinstance(body, dict) or resp.status_code not in (200, 503):
            raise SourceError(f"{self.api}/v1/may-write: HTTP {resp.status_code}")
        grant = grant_from_json(body, sent_at)
        if grant.allowed != (resp.status_code == 200):
            raise SourceError(f"{self.api}/v1/may-write: HTTP {resp.status_code} disagrees with the body")
        return grant

    async def poll(self, index: int, wait: float) -> Grant:
        sent_at = self.clock()
        grant = await self._get(index, wait)
        if grant.allowed and self.clock() - sent_at > STALE_ANCHOR:
            grant = await self._get(0, 0.0)
        return grant

    async def close(self) -> None:
        await self._client.aclose()


class ReplicaSource:
    """A replica of the DC's coordinator, in-process (the daemon's Runner + ReplicaCore)."""

    def __init__(self, opts: RunOptions, environ: Mapping[str, str]) -> None:
        self.opts = opts
        self.environ = environ
        self.topology: Topology | None = None
        self.dc: str | None = None
        self._consul: AsyncConsul | None = None
        self._runner: Runner | None = None

    async def start(self) -> None:
        """Load settings, learn the DC, start the replica. Raises StartupError (exit code)."""
        from coordinator.core.replica import ReplicaCore

        topology, consul_config, _ = load_settings(self.opts, self.environ)
        consul = AsyncConsul(consul_config)
        self._consul = consul
        dc = self.opts.dc or await discover_dc(consul, consul_config.address)
        check_dc(topology, dc)
        self.topology, self.dc = topology, dc
        core = ReplicaCore(topology, dc, self.opts.replica_id, api_address=None)
        self._runner = Runner(core, consul)
        self._runner.start()

    async def lease(self) -> float:
        if self.topology is None:
            raise SourceError("replica not started")
        return self.topology.timers.lease

    async def poll(self, index: int, wait: float) -> Grant:
        runner = self._runner
        if runner is None:
            raise SourceError("replica not started")
        await runner.wait_for_change(index, wait)
        now = runner.clock()
        ans = runner.core.may_write(now)
        reason = ans.reason.value if ans.reason is not None else None
        return Grant(
            ans.allowed, ans.dc, ans.index, ans.token, now + ans.valid_for if ans.allowed else 0.0, reason
        )

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.shutdown()  # grace: runner.shutdown_grace (covers the last yes)
            self._runner = None
        if self._consul is not None:
            await self._consul.aclose()
            self._consul = None
