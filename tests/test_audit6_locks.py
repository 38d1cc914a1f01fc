"""Audit of issue 6 (global lock): the HTTP contract of `GET /v1/locks/<name>` for bad
parameters, and the Python client helper's contract (hold counted from SEND time, several
replicas, long-poll). Reuses the scripted core of test_global_locks_api."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from aiohttp import web
from test_global_locks_api import LockCore, client_for, run

from coordinator.core.globallock import GlobalRole
from coordinator.locks_client import LocksClient, LockUnavailable, parse_lock_body


def test_bad_wait_or_index_is_a_json_400() -> None:
    async def body() -> None:
        async with client_for(LockCore()) as (client, _):
            for params in ({"index": "3", "wait": "abc"}, {"index": "3", "wait": "-1s"}, {"index": "x"}):
                resp = await client.get("/v1/locks/email", params=params)
                assert resp.status == 400, params
                assert "error" in await resp.json()

    run(body)


def test_not_held_is_503_with_zero_validity_and_the_registers_holder() -> None:
    async def body() -> None:
        core = LockCore()
        core.globals.locks["email"].role = GlobalRole.IDLE
        async with client_for(core) as (client, _):
            resp = await client.get("/v1/locks/email")
            data = await resp.json()
            assert resp.status == 503 and data["held"] is False and data["valid_for_ms"] == 0
            assert data["term"] == 4  # the term named by the registers (display)

    run(body)


def test_non_get_is_405() -> None:
    async def body() -> None:
        async with client_for(LockCore()) as (client, _):
            resp = await client.post("/v1/locks/email")
            assert resp.status == 405 and "GET" in resp.headers["Allow"]

    run(body)


def test_parse_counts_the_hold_from_the_send_time() -> None:
    st = parse_lock_body("email", {"held": True, "term": 7, "valid_for_ms": 2500, "index": 4}, sent_at=100.0)
    assert st.valid_until == 102.5 and st.remaining(101.0) == 1.5
    off = parse_lock_body("email", {"held": False, "term": 7, "valid_for_ms": 2500}, sent_at=100.0)
    assert off.valid_for == 0 and off.remaining(100.0) <= 0
    # a bool is not a term, a string validity is no validity
    odd = parse_lock_body("email", {"held": True, "term": True, "valid_for_ms": "9"}, sent_at=0.0)
    assert odd.term is None and odd.valid_for == 0


@contextmanager
def fake_replicas(answers: list[dict[str, Any] | None]) -> Iterator[list[str]]:
    """One aiohttp server per answer (None: answers 500) on free ports, in a thread."""
    loop = asyncio.new_event_loop()
    urls: list[str] = []
    runners: list[web.AppRunner] = []
    ready = threading.Event()

    def make(ans: dict[str, Any] | None) -> web.Application:
        async def handler(request: web.Request) -> web.Response:
            if ans is None:
                return web.Response(status=500)
            return web.json_response(ans, status=200 if ans.get("held") else 503)

        app = web.Application()
        app.router.add_get("/v1/locks/{name}", handler)
        return app

    async def start() -> None:
        for ans in answers:
            r = web.AppRunner(make(ans))
            await r.setup()
            site = web.TCPSite(r, "127.0.0.1", 0)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            urls.append(f"http://127.0.0.1:{port}")
            runners.append(r)
        ready.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    ready.wait(10)
    try:
        yield urls
    finally:
        async def stop() -> None:
            for r in runners:
                await r.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


NOT_HELD = {"name": "email", "held": False, "holder": "dc2/r/s", "term": 3, "valid_for_ms": 0, "index": 5}
HELD = {
    "name": "email", "held": True, "holder": "dc1/r/s", "term": 4,
    "valid_for_ms": 2000, "index": 9, "dc": "dc1",
}


def test_client_prefers_the_replica_that_holds_and_skips_broken_ones() -> None:
    with fake_replicas([None, NOT_HELD, HELD]) as urls:
        ticks = iter([10.0, 11.0, 12.0, 13.0])
        with LocksClient(urls, clock=lambda: next(ticks)) as locks:
            st = locks.get("email")
    assert st.held and st.term == 4 and st.dc == "dc1"
    # the send time of the request to the replica that answered, not of the first one
    assert st.sent_at == 12.0 and st.valid_until == 14.0


def test_client_returns_the_not_held_answer_or_raises_when_nobody_answers() -> None:
    with fake_replicas([NOT_HELD, None]) as urls, LocksClient(urls) as locks:
        st = locks.get("email")
        assert not st.held and st.holder == "dc2/r/s" and st.remaining() <= 0
    with LocksClient(["http://127.0.0.1:9"], timeout=0.5) as locks:
        try:
            locks.get("email")
        except LockUnavailable:
            pass
        else:
            raise AssertionError("no replica answered: LockUnavailable expected")


def test_client_long_poll_sends_index_and_wait() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=HELD)

    with LocksClient(["http://127.0.0.1:1"]) as locks:
        locks.http = httpx.Client(transport=httpx.MockTransport(handler))
        locks.get("email", index=9, wait=1.5)
        locks.get("email")
    assert seen[0].url.params["index"] == "9" and seen[0].url.params["wait"] == "1.500s"
    assert "index" not in seen[1].url.params

