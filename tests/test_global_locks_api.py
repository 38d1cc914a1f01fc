"""HTTP contract of `/v1/locks/<name>` (long-poll) and `POST /v1/locks/<name>/release`
(admin), through a real Runner + Api around a scripted core whose global lock is a small
fake (the core's decisions are tested in test_global_core/test_global_release).

The long-poll must wake on the change itself (the core's `lock_index` moving after a core
step), report the new state, and not spin while nothing changes (counted wake-ups)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from daemon_stubs import StubCore, StubSender

from coordinator.core.globallock import GlobalAnswer, GlobalRole
from coordinator.core.protocol import Command
from coordinator.core.topology import GlobalLockSpec
from coordinator.daemon.api import ADMIN_DISABLED, Api
from coordinator.daemon.metrics import Metrics
from coordinator.daemon.runner import Runner
from coordinator.daemon.transitions import TransitionLog

ADMIN = "lock-admin-token"
AUTH = {"Authorization": f"Bearer {ADMIN}"}


@dataclass
class FakeLock:
    spec: GlobalLockSpec = field(default_factory=lambda: GlobalLockSpec("email"))
    role: GlobalRole = GlobalRole.HOLDER
    term: int = 4
    index: int = 3


@dataclass
class FakeGlobals:
    locks: dict[str, FakeLock] = field(default_factory=lambda: {"email": FakeLock()})
    index_reads: int = 0

    def answer(self, name: str, now: float) -> GlobalAnswer | None:
        lock = self.locks.get(name)
        if lock is None:
            return None
        held = lock.role is GlobalRole.HOLDER
        return GlobalAnswer(name, held, lock.term if held else None, 2.5 if held else 0.0,
                            "dc1/r1/s" if held else None, lock.term, lock.index)

    def lock_index(self, name: str) -> int | None:
        self.index_reads += 1
        lock = self.locks.get(name)
        return lock.index if lock is not None else None

    @property
    def index(self) -> int:
        return sum(lock.index for lock in self.locks.values())


@dataclass
class LockCore(StubCore):
    globals: FakeGlobals = field(default_factory=FakeGlobals)
    releases: list[tuple[str, float]] = field(default_factory=list)

    @property
    def lock_index(self) -> int:
        return self.globals.index

    def release_global(self, name: str, hold_off: float, now: float) -> list[Command]:
        self.releases.append((name, hold_off))
        lock = self.globals.locks[name]
        lock.role = GlobalRole.IDLE
        lock.index += 1
        return []

    def change(self, now: float) -> list[Command]:
        """A core step that moves the lock: held by us with a new term."""
        lock = self.globals.locks["email"]
        lock.role, lock.term, lock.index = GlobalRole.HOLDER, lock.term + 1, lock.index + 1
        return []


@asynccontextmanager
async def client_for(
    core: LockCore, admin: str | None = ADMIN
) -> AsyncIterator[tuple[TestClient[Any, Any], Runner]]:
    runner = Runner(core, StubSender())
    api = Api(runner, Metrics(runner, TransitionLog(runner.status, core.dc)), admin_token=admin)
    client = TestClient(TestServer(api.app()))
    await client.start_server()
    runner.start()
    try:
        yield client, runner
    finally:
        await runner.close()
        await client.close()


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(test())


def test_get_reports_the_lock_and_404_for_unknown() -> None:
    async def body() -> None:
        async with client_for(LockCore()) as (client, _):
            resp = await client.get("/v1/locks/email")
            data = await resp.json()
            assert resp.status == 200 and data["held"] and data["term"] == 4 and data["index"] == 3
            assert resp.headers["X-Coordinator-Index"] == "3"
            assert data["replica"] == "r1" and data["leader"] == "r1"  # from the replica's status
            assert (await client.get("/v1/locks/nope")).status == 404

    run(body)


def test_long_poll_wakes_on_the_change_and_reports_the_new_state() -> None:
    async def body() -> None:
        core = LockCore()
        core.globals.locks["email"].role = GlobalRole.IDLE
        async with client_for(core) as (client, runner):
            wait = 20.0
            started = time.monotonic()
            poll = asyncio.ensure_future(client.get("/v1/locks/email", params={"index": "3", "wait": "20s"}))
            await asyncio.sleep(0.2)
            assert not poll.done(), "nothing changed yet: the long-poll blocks"
            runner.run_core(core.change)
            resp = await asyncio.wait_for(poll, wait)
            elapsed = time.monotonic() - started
            data = await resp.json()
            assert elapsed < wait / 2, "returned on the change, not at the end of the wait"
            assert resp.status == 200 and data["held"] and data["term"] == 5 and data["index"] == 4
            assert runner.lock_wakeups == 1

    run(body)


def test_idle_long_poll_does_not_spin() -> None:
    async def body() -> None:
        core = LockCore()
        async with client_for(core) as (client, runner):
            before = core.globals.index_reads
            resp = await client.get("/v1/locks/email", params={"index": "3", "wait": "600ms"})
            data = await resp.json()
            assert resp.status == 200 and data["index"] == 3  # unchanged at the end of the wait
            reads = core.globals.index_reads - before
            # one check before blocking, one after the single timeout wake-up (polling every
            # 20 ms would have read it ~30 times)
            assert runner.lock_wakeups == 1 and reads <= 3, (runner.lock_wakeups, reads)

    run(body)


def test_index_that_differs_does_not_block() -> None:
    async def body() -> None:
        async with client_for(LockCore()) as (client, runner):
            resp = await client.get("/v1/locks/email", params={"index": "99", "wait": "30s"})
            assert (await resp.json())["index"] == 3 and runner.lock_wakeups == 0

    run(body)


def test_release_needs_the_admin_token() -> None:
    async def body() -> None:
        async with client_for(LockCore(), admin=None) as (client, _):
            resp = await client.post("/v1/locks/email/release")
            assert resp.status == 403 and (await resp.json())["error"] == ADMIN_DISABLED
        core = LockCore()
        async with client_for(core) as (client, _):
            assert (await client.post("/v1/locks/email/release")).status == 401
            bad = {"Authorization": "Bearer wrong"}
            assert (await client.post("/v1/locks/email/release", headers=bad)).status == 401
            assert core.releases == []

    run(body)


def test_release_hands_over_with_default_and_given_hold_off() -> None:
    async def body() -> None:
        core = LockCore()
        async with client_for(core) as (client, _):
            poll = asyncio.ensure_future(client.get("/v1/locks/email", params={"index": "3", "wait": "20s"}))
            await asyncio.sleep(0.1)
            resp = await client.post("/v1/locks/email/release", headers=AUTH)
            data = await resp.json()
            assert resp.status == 200 and data["released"] is True and data["held"] is False
            spec = core.globals.locks["email"].spec
            assert data["hold_off_ms"] == int((spec.lease + spec.margin) * 1000)
            assert core.releases == [("email", spec.lease + spec.margin)]
            woken = await asyncio.wait_for(poll, 5.0)
            assert woken.status == 503 and (await woken.json())["held"] is False
            resp = await client.post("/v1/locks/email/release", headers=AUTH, params={"hold_off": "2s"})
            data = await resp.json()
            assert resp.status == 200 and data["released"] is False and data["hold_off_ms"] == 2000
            assert core.releases[-1] == ("email", 2.0)

    run(body)


def test_release_errors_are_json() -> None:
    async def body() -> None:
        core = LockCore()
        async with client_for(core) as (client, _):
            assert (await client.post("/v1/locks/nope/release", headers=AUTH)).status == 404
            for bad in ("soon", "-1s", "11m"):
                resp = await client.post("/v1/locks/email/release", headers=AUTH, params={"hold_off": bad})
                assert resp.status == 400 and "hold_off" in (await resp.json())["error"]
            resp = await client.get("/v1/locks/email/release")
            assert resp.status == 405 and resp.headers["Allow"] == "POST"
            core.globals.locks["email"].role = GlobalRole.INACTIVE
            resp = await client.post("/v1/locks/email/release", headers=AUTH)
            assert resp.status == 409 and "leader" in (await resp.json())["error"]
            assert core.releases == []

    run(body)
