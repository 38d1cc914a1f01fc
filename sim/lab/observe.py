"""Recording the run: the history recorder and one watcher + writer per replica.

`Recorder` stamps every event with ``t = time.monotonic() - t0`` and streams it to a JSON
lines file as it happens (so a crash keeps what was seen). `merge` folds in the
protected resource's log (raw monotonic stamps, same machine clock) and sorts by time.

`ReplicaWatch` is the harness's model of one application instance next to one replica:

- it long-polls the replica's ``GET /v1/may-write?index=`` over the management link and
  records a ``replica`` event whenever (role, state, allowed, token, reason) changes;
- a "yes" is believed only for ``valid_for_ms`` counted from when the request was sent
  (for a long-poll that blocked: from its receipt minus TRIP_ALLOWANCE);
  when it runs out with no newer answer, the watcher records allowed=false itself
  (reason ``lease-expired``), so the history never shows a yes longer than the replica
  promised;
- while (believed) allowed it writes its token to the protected resource every
  `write_interval` seconds;
- the harness marks it ``down`` (SIGKILL) or ``paused`` (SIGSTOP); a paused instance keeps
  its last token and, when resumed, first tries ONE write with it (the zombie write a
  paused process would make), then asks may-write again.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import IO, Any

import httpx

from sim.history import Event, dumps, write_jsonl

POLL_WAIT = 5.0
RETRY_PAUSE = 0.1
TRIP_ALLOWANCE = 0.01
"""Bound on the response's trip over the management link (seconds): a long-poll's answer
is computed when the replica sends it, so its validity counts from max(request sent,
response received - TRIP_ALLOWANCE)."""


class Recorder:
    def __init__(self, path: Path) -> None:
        self.t0 = time.monotonic()
        self.path = path
        self.events: list[Event] = []
        self._fh: IO[str] = open(path, "w", encoding="utf-8")  # noqa: SIM115 (closed by close())

    def now(self) -> float:
        return time.monotonic() - self.t0

    def emit(self, kind: str, **fields: Any) -> Event:
        event: Event = {"t": self.now(), "kind": kind, **fields}
        self.events.append(event)
        self._fh.write(dumps(event) + "\n")
        self._fh.flush()
        return event

    def add(self, event: Event) -> None:
        """An event with its own `t` (e.g. meta at 0.0)."""
        self.events.append(event)
        self._fh.write(dumps(event) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()

    def merge(self, resource_log: Path, out: Path) -> list[Event]:
        """Harness events + resource writes, sorted by t (stable), written to `out`."""
        merged = list(self.events)
        if resource_log.exists():
            for line in resource_log.read_text(encoding="utf-8").splitlines():
                if not line.strip():
                    continue
                rec = json.loads(line)
                mono = float(rec.pop("mono"))
                if mono < self.t0:
                    continue
                rec["t"] = mono - self.t0
                merged.append(rec)
        meta = [e for e in merged if e["kind"] == "meta"]
        rest = sorted((e for e in merged if e["kind"] != "meta"), key=lambda e: float(e["t"]))
        ordered = meta + rest
        with open(out, "w", encoding="utf-8") as fh:
            write_jsonl(ordered, fh)
        return ordered


def _state(allowed: bool, reason: str | None, override: str | None) -> str:
    if override is not None:
        return override
    if allowed:
        return "writable"
    if reason in ("catching-up", "starting"):
        return str(reason)
    return "fenced"


class ReplicaWatch:
    def __init__(
        self, rec: Recorder, client: httpx.AsyncClient, dc: str, replica: str, api: str,
        resource: str, write_interval: float = 0.05,
    ) -> None:
        self.rec, self.client, self.dc, self.replica = rec, client, dc, replica
        self.api = api.rstrip("/")
        self.resource = resource.rstrip("/")
        self.write_interval = write_interval
        self.allowed = False
        self.token: int | None = None
        self.reason: str | None = "starting"
        self.leader: str | None = None
        self.valid_until = 0.0
        self.override: str | None = None
        self.zombie_token: int | None = None
        self.index = 0
        self.writes = 0
        self._last: tuple[Any, ...] | None = None
        self._generation = 0

    # -- state -----------------------------------------------------------------------------

    @property
    def role(self) -> str:
        if self.override is not None:
            return self.override
        return "leader" if self.leader == self.replica else "follower"

    def _emit_if_changed(self) -> None:
        key = (self.role, self.allowed, self.token if self.allowed else None, self.reason, self.override)
        if key == self._last:
            return
        self._last = key
        self.rec.emit(
            "replica", dc=self.dc, replica=self.replica, role=self.role,
            state=_state(self.allowed, self.reason, self.override), allowed=self.allowed,
            token=self.token if self.allowed else None, reason=None if self.allowed else self.reason,
        )

    def announce(self) -> None:
        """Record the replica before its process runs: role ``down`` (for the checker it
        does not run yet, so its start counts as a disturbance when it first answers),
        state ``starting`` (drawn as starting up, not as fenced)."""
        self._last = ("down", False, None, "starting", "down")
        self.rec.emit(
            "replica", dc=self.dc, replica=self.replica, role="down", state="starting",
            allowed=False, token=None, reason="starting",
        )

    def mark(self, override: str | None) -> None:
        """Harness: the process was killed ("down"), stopped ("paused"), or is back (None)."""
        self._generation += 1
        if override == "paused" and self.allowed:
            self.zombie_token = self.token
        if override is not None:
            self.allowed = False
            self.reason = override
        else:
            self.index = 0
            self.reason = "starting"
        self.override = override
        self._emit_if_changed()

    # -- loops -------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.gather(self._poll(stop), self._expire(stop), self._write(stop))

    async def _poll(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            if self.override is not None:
                await asyncio.sleep(RETRY_PAUSE)
                continue
            gen = self._generation
            if self.zombie_token is not None:
                await self._write_once(self.zombie_token)
                self.zombie_token = None
            sent = time.monotonic()
            wait = POLL_WAIT if not self.allowed else max(0.05, (self.valid_until - sent) / 2)
            url = f"{self.api}/v1/may-write?index={self.index}&wait={int(wait * 1000)}ms"
            try:
                resp = await self.client.get(url, timeout=wait + 2.0)
                body = resp.json()
            except (httpx.HTTPError, ValueError):
                await asyncio.sleep(RETRY_PAUSE)
                continue
            if gen != self._generation or self.override is not None or not isinstance(body, dict):
                continue
            self.index = int(body.get("index", 0))
            self.leader = body.get("leader")
            if body.get("allowed") is True:
                self.allowed = True
                self.token = int(body["token"])
                self.reason = None
                received = time.monotonic()
                base = max(sent, received - TRIP_ALLOWANCE)
                self.valid_until = base + float(body.get("valid_for_ms", 0)) / 1000.0
                if self.valid_until <= time.monotonic():
                    self.allowed, self.reason = False, "lease-expired"
            else:
                self.allowed = False
                self.reason = str(body.get("reason"))
            self._emit_if_changed()

    async def _expire(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            if self.allowed and time.monotonic() >= self.valid_until:
                self.allowed, self.reason = False, "lease-expired"
                self._emit_if_changed()
            await asyncio.sleep(0.01)

    async def _write(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            if self.allowed and self.token is not None and time.monotonic() < self.valid_until:
                await self._write_once(self.token)
            await asyncio.sleep(self.write_interval)

    async def _write_once(self, token: int) -> None:
        try:
            await self.client.post(
                f"{self.resource}/write", json={"dc": self.dc, "replica": self.replica, "token": token},
                timeout=2.0,
            )
            self.writes += 1
        except httpx.HTTPError:
            pass
