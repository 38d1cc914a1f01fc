"""A tiny stand-in for the coordinator HTTP API, for `coordinator exec --api` tests.

Serves ``GET /v1/may-write`` (with the ``?index=&wait=`` long-poll) and ``GET /v1/status``
(only ``timers.lease``) from an aiohttp app running on its own thread and event loop,
on a free 127.0.0.1 port. The test flips the answer with `StubApi.set_yes` / `set_no`.

A yes is either renewed (every answer carries the full `valid_for`) or frozen (an absolute
expiry: ``valid_for_ms`` shrinks as time passes, the way a coordinator whose rounds stopped
confirming would answer until its core says no).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from aiohttp import web

from coordinator.demo_cluster import LocalCluster


class StubApi:
    def __init__(self, lease: float = 1.5) -> None:
        self.lease = lease
        self.allowed = False
        self.token: int | None = None
        self.reason = "starting"
        self.index = 1
        self.frozen_until: float | None = None
        self.requests = 0
        self.closing = False
        self.loop = asyncio.new_event_loop()
        self._cond: asyncio.Condition | None = None
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    # -- control (called from the test thread) -------------------------------------------

    def _call(self, fn: Any) -> None:
        asyncio.run_coroutine_threadsafe(fn(), self.loop).result(timeout=10)

    def set_yes(self, token: int, frozen_for: float | None = None) -> None:
        async def change() -> None:
            self.allowed, self.token, self.reason = True, token, ""
            self.frozen_until = None if frozen_for is None else time.monotonic() + frozen_for
            await self._bump()

        self._call(change)

    def set_no(self, reason: str = "not-in-quorum") -> None:
        async def change() -> None:
            self.allowed, self.token, self.reason, self.frozen_until = False, None, reason, None
            await self._bump()

        self._call(change)

    async def _bump(self) -> None:
        assert self._cond is not None
        async with self._cond:
            self.index += 1
            self._cond.notify_all()

    # -- server ---------------------------------------------------------------------------

    def _body(self) -> tuple[int, dict[str, Any]]:
        if not self.allowed:
            return 503, {
                "allowed": False,
                "dc": "dc1",
                "reason": self.reason,
                "leader": "x",
                "index": self.index,
            }
        valid = self.lease if self.frozen_until is None else max(self.frozen_until - time.monotonic(), 0.0)
        return 200, {
            "allowed": True,
            "dc": "dc1",
            "leader": "x",
            "token": self.token,
            "quorum": ["dc1", "dc2"],
            "index": self.index,
            "valid_for_ms": int(valid * 1000),
        }

    async def may_write(self, request: web.Request) -> web.Response:
        self.requests += 1
        index = int(request.query.get("index", "0"))
        wait_text = request.query.get("wait", "300s")
        wait = float(wait_text[:-2]) / 1000 if wait_text.endswith("ms") else float(wait_text[:-1])
        assert self._cond is not None
        if index and index >= self.index:
            async with self._cond:
                with suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._cond.wait_for(lambda: self.index > index or self.closing), wait
                    )
        status, body = self._body()
        return web.Response(status=status, body=json.dumps(body).encode(), content_type="application/json")

    async def status(self, request: web.Request) -> web.Response:
        return web.json_response({"timers": {"lease": self.lease}})

    async def _start(self) -> None:
        self._cond = asyncio.Condition()
        app = web.Application()
        app.router.add_get("/v1/may-write", self.may_write)
        app.router.add_get("/v1/status", self.status)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{port}"

    async def _stop(self) -> None:
        self.closing = True
        await self._bump()
        if self._runner is not None:
            await self._runner.cleanup()

    def start(self) -> None:
        self._thread.start()
        self._call(self._start)

    def stop(self) -> None:
        self._call(self._stop)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)


@contextmanager
def stub_api(lease: float = 1.5) -> Iterator[StubApi]:
    api = StubApi(lease)
    api.start()
    try:
        yield api
    finally:
        api.stop()


# -- real processes: the emulator and `coordinator run` replicas ----------------------------

REPO = Path(__file__).resolve().parent.parent
TOPOLOGY = REPO / "topology.yaml"
DEADLINE = 45.0
"""Generous bound for anything that should happen within a few seconds."""


def wait_for(cond: Callable[[], bool], what: str, deadline: float = DEADLINE, step: float = 0.02) -> float:
    """Poll until `cond()`; returns the monotonic time it held. AssertionError on time-out."""
    end = time.monotonic() + deadline
    while True:
        now = time.monotonic()
        if cond():
            return now
        if now > end:
            raise AssertionError(f"timed out after {deadline:g}s waiting for {what}")
        time.sleep(step)


def allowed(cluster: LocalCluster, dc: str) -> bool:
    ans = cluster.dc_answer(dc)
    return bool(ans and ans.get("allowed"))


@contextmanager
def running_cluster(
    replicas: dict[str, list[str]],
    topology: Path = TOPOLOGY,
    *,
    wait_writable: bool = True,
    datacenters: tuple[str, ...] = ("dc1", "dc2", "dc3"),
) -> Iterator[LocalCluster]:
    """Emulator for `datacenters` + the given replicas (DC -> replica ids); all stopped on exit."""
    cluster = LocalCluster(topology, datacenters)
    try:
        cluster.start_emulator()
        for dc, ids in replicas.items():
            for rid in ids:
                cluster.start_replica(dc, rid)
        if wait_writable:
            wait_for(lambda: all(allowed(cluster, dc) for dc in replicas), "every DC writable")
        yield cluster
    finally:
        cluster.stop()
