"""Blocking-query wake-ups of the emulator: watch sets (pure layer), the waiter index and the
shared-reply cache of the aiohttp shell, and end-to-end fidelity over real HTTP (in-process
emulator on a free port).

Fidelity rules under test (Consul's): a waiter must return once its index moves; a waiter
on an existing key is not disturbed by writes to other keys; a missing key reports the KV
table index, so any KV write returns it; a leader flip re-evaluates every waiter; a
blocking query's timeout answer is never handed to another waiter.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

import aiohttp

from sim.consul.api import Router
from sim.consul.federation import Federation
from sim.consul.http_types import Block, Reply, Request, Watch
from sim.consul.kv import MAX_TRACKED_CHANGES, KVStore
from sim.consul.model import Datacenter, DcConfig
from sim.consul.server import DcHost, Emulator, EmulatorConfig, Waiters


def _router() -> tuple[Datacenter, Router]:
    rng = random.Random(7)
    dc = Datacenter(DcConfig("dc1"), rng, 0.0)
    return dc, Router(dc, Federation(["dc1"]), rng)


def _put(router: Router, key: str, value: bytes = b"v") -> None:
    out = router.handle(Request("PUT", "/v1/kv/" + key, (), {}, value), 1.0)
    assert isinstance(out, Reply) and out.status == 200


def _park(router: Router, path: str, *flags: tuple[str, str]) -> Block:
    index = str(router.dc.index)
    out = router.handle(Request("GET", path, (*flags, ("index", index), ("wait", "30s"))), 1.0)
    assert isinstance(out, Block), out
    return out


# ---------------------------------------------------------------- pure layer


def test_blocks_carry_what_they_watch() -> None:
    _, router = _router()
    _put(router, "app/a")
    assert _park(router, "/v1/kv/app/a").watch == Watch(kv_key="app/a")
    assert _park(router, "/v1/kv/missing").watch == Watch(kv_prefix="")
    assert _park(router, "/v1/kv/app/", ("recurse", "")).watch == Watch(kv_prefix="app/")
    assert _park(router, "/v1/kv/app/", ("keys", "")).watch == Watch(kv_prefix="app/")
    assert _park(router, "/v1/kv/none/", ("recurse", "")).watch == Watch(kv_prefix="")
    sess = router.handle(Request("PUT", "/v1/session/create", (), {}, b"{}"), 1.0)
    assert isinstance(sess, Reply)
    assert _park(router, "/v1/session/list").watch is None


def test_kv_change_journal_records_writes_tombstones_and_releases() -> None:
    dc, router = _router()
    dc.take_kv_changes()
    _put(router, "a/1")
    _put(router, "a/2")
    _put(router, "b")
    assert dc.take_kv_changes() == (False, frozenset({"a/1", "a/2", "b"}))
    assert dc.take_kv_changes() == (False, frozenset())
    assert isinstance(router.handle(Request("DELETE", "/v1/kv/a/", (("recurse", ""),)), 1.0), Reply)
    assert dc.take_kv_changes() == (False, frozenset({"a/", "a/1", "a/2"}))
    sid = router.handle(Request("PUT", "/v1/session/create", (), {}, b"{}"), 1.0)
    assert isinstance(sid, Reply)
    session = sid.json()["ID"]
    out = router.handle(Request("PUT", "/v1/kv/lock", (("acquire", session),), {}, b"x"), 1.0)
    assert isinstance(out, Reply) and out.json() is True
    dc.take_kv_changes()
    router.handle(Request("PUT", "/v1/session/destroy/" + session), 1.0)
    assert dc.take_kv_changes() == (False, frozenset({"lock"}))


def test_kv_change_journal_is_bounded() -> None:
    kv = KVStore()
    for i in range(MAX_TRACKED_CHANGES + 1):
        kv.set(i + 1, f"k{i}", b"v", 0)
    assert kv.take_changes() == (True, frozenset())
    kv.set(10**6, "one", b"v", 0)
    assert kv.take_changes() == (False, frozenset({"one"}))


def test_leader_epoch_moves_on_every_flip() -> None:
    dc, _ = _router()
    start = dc.leader_epoch
    dc.set_leader(False, 1.0)
    dc.set_leader(False, 1.0)
    dc.set_leader(True, 2.0)
    assert dc.leader_epoch == start + 2


# ---------------------------------------------------------------- shell: waiter index


def test_waiters_wake_only_what_a_change_covers() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        w = Waiters()
        futs = {name: loop.create_future() for name in ("a", "b", "pre_a", "pre_x", "all_kv", "other")}
        w.add(Watch(kv_key="x/a"), futs["a"])
        w.add(Watch(kv_key="x/b"), futs["b"])
        w.add(Watch(kv_prefix="x/"), futs["pre_a"])
        w.add(Watch(kv_prefix="y/"), futs["pre_x"])
        w.add(Watch(kv_prefix=""), futs["all_kv"])
        w.add(None, futs["other"])
        w.wake(False, frozenset({"x/a"}))
        woken = {n for n, f in futs.items() if f.done()}
        assert woken == {"a", "pre_a", "all_kv", "other"}
        w.wake(True, frozenset())
        assert all(f.done() for f in futs.values())
        assert not w.by_key and not w.by_prefix and not w.other

    asyncio.run(scenario())


def test_waiters_remove_cleans_empty_buckets() -> None:
    async def scenario() -> None:
        w = Waiters()
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        w.add(Watch(kv_key="k"), fut)
        w.remove(Watch(kv_key="k"), fut)
        w.remove(Watch(kv_key="k"), fut)
        assert w.by_key == {}

    asyncio.run(scenario())


# ---------------------------------------------------------------- shell: shared replies


def _host() -> tuple[DcHost, Router]:
    dc, router = _router()
    _put(router, "k")
    return DcHost(dc, router), router


def test_reply_shared_only_when_the_index_moved_and_only_at_that_version() -> None:
    host, router = _host()
    old = str(host.dc.index - 1)
    req = Request("GET", "/v1/kv/k", (("index", old), ("wait", "30s")))
    key = host.reply_key(req)
    assert key is not None
    reply = router.handle(req, 1.0)
    assert isinstance(reply, Reply) and int(reply.headers["X-Consul-Index"]) > int(old)
    host.remember(key, req, reply)
    assert host.cached_reply(key) is reply
    _put(router, "other")
    assert host.cached_reply(key) is None


def test_timeout_answer_is_never_shared() -> None:
    host, router = _host()
    current = str(host.dc.index)
    req = Request("GET", "/v1/kv/k", (("index", current), ("wait", "1s")))
    key = host.reply_key(req)
    assert key is not None
    block = router.handle(req, 1.0)
    assert isinstance(block, Block)
    timed_out = router.handle(req, block.wake_at, block.resume)
    assert isinstance(timed_out, Reply) and timed_out.headers["X-Consul-Index"] == current
    host.remember(key, req, timed_out)
    assert host.cached_reply(key) is None


def test_no_sharing_without_leader_or_for_writes_and_other_endpoints() -> None:
    host, router = _host()
    assert host.reply_key(Request("PUT", "/v1/kv/k")) is None
    assert host.reply_key(Request("GET", "/v1/session/list")) is None
    req = Request("GET", "/v1/kv/k", (("stale", ""),))
    key = host.reply_key(req)
    assert key is not None
    host.dc.set_leader(False, 2.0)
    reply = router.handle(req, 3.0)
    assert isinstance(reply, Reply) and reply.status == 200
    host.remember(key, req, reply)
    assert host.cached_reply(key) is None
    token_a = host.reply_key(Request("GET", "/v1/kv/k", (), {"x-consul-token": "a"}))
    assert token_a != host.reply_key(Request("GET", "/v1/kv/k", (), {"x-consul-token": "b"}))


# ---------------------------------------------------------------- end to end over HTTP


Scenario = Callable[[aiohttp.ClientSession, str], Awaitable[None]]


def _run(scenario: Scenario) -> None:
    async def main() -> None:
        em = Emulator(EmulatorConfig(["dc1"], http_port=0, seed=1))
        urls = await em.start()
        try:
            async with aiohttp.ClientSession() as http:
                await asyncio.wait_for(scenario(http, urls["dc1"]), 30)
        finally:
            await em.stop()

    asyncio.run(main())


async def _index_of(http: aiohttp.ClientSession, url: str) -> str:
    async with http.get(url) as resp:
        return resp.headers["X-Consul-Index"]


async def _watch(http: aiohttp.ClientSession, url: str, index: str) -> tuple[int, str, bytes]:
    async with http.get(url, params={"index": index, "wait": "30s"}) as resp:
        return resp.status, resp.headers.get("X-Consul-Index", ""), await resp.read()


async def _put_http(http: aiohttp.ClientSession, url: str, value: bytes) -> None:
    async with http.put(url, data=value) as resp:
        assert resp.status == 200


def test_many_watchers_of_one_key_all_return_the_new_value() -> None:
    async def scenario(http: aiohttp.ClientSession, base: str) -> None:
        key_url, other_url = base + "/v1/kv/hot", base + "/v1/kv/cold"
        await _put_http(http, key_url, b"0")
        await _put_http(http, other_url, b"0")
        index = await _index_of(http, key_url)
        cold_index = await _index_of(http, other_url)
        cold = asyncio.create_task(_watch(http, other_url, cold_index))
        hot = [asyncio.create_task(_watch(http, key_url, index)) for _ in range(40)]
        await asyncio.sleep(0.3)
        assert not any(t.done() for t in [*hot, cold])
        await _put_http(http, key_url, b"1")
        results = await asyncio.gather(*hot)
        assert {(status, body) for status, _, body in results} == {(200, results[0][2])}
        assert b'"Value":"MQ=="' in results[0][2]
        assert all(int(seen) > int(index) for _, seen, _ in results)
        assert not cold.done()
        await _put_http(http, other_url, b"1")
        status, seen, _ = await cold
        assert status == 200 and int(seen) > int(cold_index)

    _run(scenario)


def test_missing_key_watcher_returns_on_any_kv_write() -> None:
    async def scenario(http: aiohttp.ClientSession, base: str) -> None:
        await _put_http(http, base + "/v1/kv/seed", b"0")
        async with http.get(base + "/v1/kv/absent") as resp:
            assert resp.status == 404
            index = resp.headers["X-Consul-Index"]
        waiter = asyncio.create_task(_watch(http, base + "/v1/kv/absent", index))
        await asyncio.sleep(0.2)
        assert not waiter.done()
        await _put_http(http, base + "/v1/kv/elsewhere", b"x")
        status, seen, _ = await waiter
        assert status == 404 and int(seen) > int(index)

    _run(scenario)


def test_leader_loss_wakes_kv_waiters() -> None:
    async def scenario(http: aiohttp.ClientSession, base: str) -> None:
        await _put_http(http, base + "/v1/kv/k", b"0")
        index = await _index_of(http, base + "/v1/kv/k")
        waiter = asyncio.create_task(_watch(http, base + "/v1/kv/k", index))
        await asyncio.sleep(0.2)
        async with http.put(base + "/_emulator/leader", params={"state": "down"}) as resp:
            assert resp.status == 200
        async with http.get(base + "/v1/kv/k", params={"index": index, "wait": "30s"}) as resp:
            assert resp.status == 500
        status, _, body = await waiter
        assert (status, body) == (500, b"No cluster leader")

    _run(scenario)
