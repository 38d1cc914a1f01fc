"""aiohttp shell: one HTTP server per emulated DC around the pure model and router.

- Blocking queries park a future in their DC's `Waiters`, indexed by the Block's `Watch`
  (KV key, KV prefix, or anything). When the DC's `version` moves, only the waiters whose
  watch covers a changed KV key (`Datacenter.take_kv_changes`) re-evaluate, plus the
  unindexed ones; a leader flip wakes every waiter.
- One timer task per DC sleeps until `Datacenter.next_deadline()` and calls `advance`.
- `?dc=` forwarding: to an in-process DC the other DC's router runs directly (no HTTP
  hop) but link state is honoured; to a `--peer` DC a real HTTP request is made.
- Fault control under `/_emulator/` (see `control.py`).
- HTTP: one `listen.Listener` (granian) per DC; this module never sees the HTTP library.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from dataclasses import dataclass, field

from aiohttp import ClientError, ClientSession, ClientTimeout

from sim.consul.api import DEFAULT_WAIT, MAX_WAIT, Router
from sim.consul.durations import SECOND, DurationError, NumError, parse_duration, parse_uint64
from sim.consul.errors import DC_UNREACHABLE, NO_DC_PATH
from sim.consul.federation import DEFAULT_FAIL_AFTER, Federation
from sim.consul.http_types import Block, Forward, Reply, Request, Watch, text_reply
from sim.consul.listen import Listener
from sim.consul.model import Datacenter, DcConfig
from sim.consul.sessions import SessionExpiry

FORWARDED_HEADERS = ("x-consul-token", "authorization", "content-type")


@dataclass
class EmulatorConfig:
    datacenters: list[str]
    bind: str = "127.0.0.1"
    http_port: int = 18500
    peers: dict[str, str] = field(default_factory=dict)
    forward_timeout: float = 10.0
    session_expiry: SessionExpiry = "2ttl"
    seed: int | None = None
    acl_master_token: str | None = None
    rpc_hold_timeout: float = 0.0
    wan_fail_after: float = DEFAULT_FAIL_AFTER


Waiter = asyncio.Future[None]
ReplyKey = tuple[str, tuple[tuple[str, str], ...], str, str]
MAX_CACHED_REPLIES = 1024


class Waiters:
    """Parked blocking queries of one DC, indexed by what they watch (`http_types.Watch`).

    Invariant: a parked future sits in exactly one bucket until it is woken (its bucket is
    detached and every future in it resolved) or its owner removes it. Waking is a
    superset of what changed: a spurious wake-up only costs one re-evaluation.
    """

    def __init__(self) -> None:
        self.by_key: dict[str, set[Waiter]] = {}
        self.by_prefix: dict[str, set[Waiter]] = {}
        self.other: set[Waiter] = set()

    def add(self, watch: Watch | None, fut: Waiter) -> None:
        if watch is None:
            self.other.add(fut)
        elif watch.kv_key is not None:
            self.by_key.setdefault(watch.kv_key, set()).add(fut)
        else:
            self.by_prefix.setdefault(watch.kv_prefix or "", set()).add(fut)

    def remove(self, watch: Watch | None, fut: Waiter) -> None:
        if watch is None:
            self.other.discard(fut)
            return
        table, name = ((self.by_key, watch.kv_key) if watch.kv_key is not None
                       else (self.by_prefix, watch.kv_prefix or ""))
        bucket = table.get(name)
        if bucket is not None:
            bucket.discard(fut)
            if not bucket:
                del table[name]

    @staticmethod
    def _release(bucket: set[Waiter] | None) -> None:
        for fut in bucket or ():
            if not fut.done():
                fut.set_result(None)

    def wake(self, everything: bool, keys: frozenset[str]) -> None:
        """Wakes the non-KV waiters, and the KV waiters whose key or prefix covers a
        changed key (all of them when `everything`)."""
        other, self.other = self.other, set()
        self._release(other)
        if everything:
            by_key, by_prefix, self.by_key, self.by_prefix = self.by_key, self.by_prefix, {}, {}
            for bucket in (*by_key.values(), *by_prefix.values()):
                self._release(bucket)
            return
        for key in keys:
            self._release(self.by_key.pop(key, None))
        if self.by_prefix and keys:
            for prefix in [p for p in self.by_prefix if any(k.startswith(p) for k in keys)]:
                self._release(self.by_prefix.pop(prefix))


def http_url(host: str, port: int) -> str:
    """`http://host:port`, with an IPv6 literal in brackets (RFC 3986: `http://[::1]:8500`)."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _wake_up(fut: Waiter) -> None:
    if not fut.done():
        fut.set_result(None)


class DcHost:
    """One in-process DC: model, router, parked waiters and its timer task."""

    def __init__(self, dc: Datacenter, router: Router) -> None:
        self.dc = dc
        self.router = router
        self.waiters = Waiters()
        self.kick = asyncio.Event()
        self.url = ""
        self._version = dc.version
        self._leader_epoch = dc.leader_epoch
        self._replies: dict[ReplyKey, Reply] = {}
        self._replies_version = dc.version

    def reply_key(self, req: Request) -> ReplyKey | None:
        """Cache key for a KV read whose reply is a pure function of (request, model
        version) while the DC has a leader; None for anything else."""
        if req.method != "GET" or not req.path.startswith("/v1/kv/"):
            return None
        h = req.headers
        return req.path, req.query, h.get("x-consul-token", ""), h.get("authorization", "")

    def cached_reply(self, key: ReplyKey) -> Reply | None:
        """The reply an identical request got at the current version, if any."""
        if self._replies_version != self.dc.version or not self.dc.leader:
            return None
        return self._replies.get(key)

    def remember(self, key: ReplyKey, req: Request, reply: Reply) -> None:
        """Shares `reply` with identical requests at this version, unless it is a
        blocking query's timeout answer (that depends on the caller's own deadline)."""
        dc = self.dc
        if not dc.leader:
            return
        if self._replies_version != dc.version:
            self._replies = {}
            self._replies_version = dc.version
        seen = reply.headers.get("X-Consul-Index")
        if seen is None or len(self._replies) >= MAX_CACHED_REPLIES:
            return
        index = req.param("index")
        if index:
            try:
                if int(seen) <= parse_uint64(index):
                    return
            except NumError:
                return
        self._replies[key] = reply

    def changed(self) -> None:
        """Wakes the waiters that the model's changes since the last call may concern."""
        dc = self.dc
        if dc.version == self._version:
            return
        self._version = dc.version
        everything, keys = dc.take_kv_changes()
        if dc.leader_epoch != self._leader_epoch:
            self._leader_epoch = dc.leader_epoch
            everything = True
        self.waiters.wake(everything, keys)

    def notify(self) -> None:
        """After anything may have changed the model: wake concerned waiters, kick the timer."""
        self.changed()
        self.kick.set()

    async def park(self, watch: Watch | None, wake_at: float) -> None:
        """Returns when `watch` may have changed or at `wake_at` (monotonic seconds)."""
        loop = asyncio.get_running_loop()
        fut: Waiter = loop.create_future()
        self.waiters.add(watch, fut)
        timer = loop.call_later(max(0.0, wake_at - time.monotonic()), _wake_up, fut)
        try:
            await fut
        finally:
            timer.cancel()
            self.waiters.remove(watch, fut)

    async def timer_loop(self) -> None:
        while True:
            deadline = self.dc.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.kick.wait(), timeout)
            self.kick.clear()
            self.dc.advance(time.monotonic())
            self.changed()


class Emulator:
    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        rng = random.Random(config.seed)
        self.federation = Federation([*config.datacenters, *config.peers], config.wan_fail_after)
        self.link_changed = asyncio.Event()
        self.hosts: dict[str, DcHost] = {}
        now = time.monotonic()
        for name in config.datacenters:
            dc = Datacenter(DcConfig(name, address=config.bind, session_expiry=config.session_expiry,
                                     rpc_hold_timeout=config.rpc_hold_timeout), rng, now)
            self.hosts[name] = DcHost(dc, Router(dc, self.federation, rng, config.acl_master_token))
        self._listeners: list[Listener] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._client: ClientSession | None = None

    # ---- lifecycle ------------------------------------------------------------------

    async def start(self) -> dict[str, str]:
        """Serves every DC; returns {dc: url} once each answers HTTP (OSError: cannot bind)."""
        from sim.consul.control import Control

        self._client = client = ClientSession()
        control = Control(self)
        for k, host in enumerate(self.hosts.values()):

            async def entry(req: Request, host: DcHost = host) -> Reply:
                if req.path.startswith("/_emulator/"):
                    return await control.handle(host, req)
                return await self.execute(host, req)

            port = self.config.http_port + k if self.config.http_port else 0
            listener = Listener(self.config.bind, port, entry)
            self._listeners.append(listener)

            async def probe(listener: Listener = listener) -> bool:
                try:
                    url = http_url(listener.bind, listener.port) + "/v1/status/leader"
                    async with client.get(url, timeout=ClientTimeout(total=2)) as resp:
                        await resp.read()
                        return resp.status == 200
                except (TimeoutError, ClientError):
                    return False

            await listener.start(probe)
            host.url = http_url(listener.bind, listener.port)
            self._tasks.append(asyncio.create_task(host.timer_loop()))
        return {name: host.url for name, host in self.hosts.items()}

    async def stop(self, grace: float = 1.0) -> bool:
        """Stops serving; True if every request in flight was answered within `grace` s.
        Requests still running (parked blocking queries, hanging forwards) are left as they
        are: `python -m sim.consul` then ends the process, which closes their connections
        unanswered, as a stopping Consul agent does."""
        for task in self._tasks:
            task.cancel()
        drained = await asyncio.gather(*(listener.stop(grace) for listener in self._listeners))
        if self._client is not None:
            await self._client.close()
        return all(drained)

    def notify_links(self) -> None:
        self.link_changed.set()
        self.link_changed = asyncio.Event()

    # ---- request path ---------------------------------------------------------------

    async def execute(self, host: DcHost, req: Request) -> Reply:
        """Runs the router until it answers, honouring Block and Forward."""
        resume = None
        key = host.reply_key(req)
        while True:
            if key is not None:
                hit = host.cached_reply(key)
                if hit is not None:
                    return hit
            before = host.dc.version
            outcome = host.router.handle(req, time.monotonic(), resume)
            if host.dc.version != before:
                host.notify()
            if isinstance(outcome, Reply):
                if key is not None:
                    host.remember(key, req, outcome)
                return outcome
            if isinstance(outcome, Forward):
                return await self.forward(host.dc.name, outcome)
            assert isinstance(outcome, Block)
            resume = outcome.resume
            await host.park(outcome.watch, outcome.wake_at)

    async def forward(self, src: str, fwd: Forward) -> Reply:
        route = self.federation.route(src, fwd.dc, time.monotonic())
        if route == "unknown":
            return text_reply(500, NO_DC_PATH)
        if route == "fail":
            return text_reply(500, DC_UNREACHABLE)
        if route == "hang":
            await asyncio.sleep(self.config.forward_timeout)
            return text_reply(500, DC_UNREACHABLE)
        target = self.hosts.get(fwd.dc)
        if target is not None:
            return await self._forward_local(src, target, fwd.request)
        return await self._forward_http(fwd)

    async def _forward_local(self, src: str, target: DcHost, req: Request) -> Reply:
        task = asyncio.create_task(self.execute(target, req))
        while True:
            watcher = asyncio.create_task(self.link_changed.wait())
            done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
            watcher.cancel()
            if task in done:
                return task.result()
            if not self.federation.link_up(src, target.dc.name):
                task.cancel()
                await asyncio.sleep(self.config.forward_timeout)
                return text_reply(500, DC_UNREACHABLE)

    def _blocking_budget(self, req: Request) -> float:
        if not req.param("index"):
            return 0.0
        wait = DEFAULT_WAIT
        with contextlib.suppress(DurationError):
            wait = parse_duration(req.param("wait") or "5m") / SECOND
        wait = min(wait, MAX_WAIT) if wait > 0 else DEFAULT_WAIT
        return wait + wait / 16

    async def _forward_http(self, fwd: Forward) -> Reply:
        assert self._client is not None
        req = fwd.request
        base = self.config.peers[fwd.dc]
        timeout = ClientTimeout(total=self.config.forward_timeout + self._blocking_budget(req) + 5,
                                sock_connect=self.config.forward_timeout)
        headers = {k: v for k, v in req.headers.items() if k in FORWARDED_HEADERS}
        try:
            async with self._client.request(req.method, base + req.path, params=list(req.query),
                                            headers=headers, data=req.body or None,
                                            timeout=timeout) as resp:
                body = await resp.read()
                keep = {k: v for k, v in resp.headers.items()
                        if k.lower().startswith("x-consul-") or k.lower() in ("content-type", "allow")}
                return Reply(resp.status, keep, body)
        except (TimeoutError, ClientError):
            return text_reply(500, DC_UNREACHABLE)

    def state(self) -> dict[str, object]:
        now = time.monotonic()
        return {
            "datacenters": {
                name: {"url": h.url, "leader": h.dc.leader, "index": h.dc.index,
                       "sessions": len(h.dc.sessions), "keys": len(h.dc.kv.entries)}
                for name, h in self.hosts.items()
            },
            "peers": dict(self.config.peers),
            "links": [{"from": s, "to": d, "state": "down", "down_for": round(now - t, 3)}
                      for (s, d), t in sorted(self.federation.down_since.items())],
        }


def state_json(em: Emulator) -> bytes:
    return json.dumps(em.state()).encode()
