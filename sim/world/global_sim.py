"""A deterministic world for the global lock: one claimant per DC over the emulated Consul.

Built from the simulator's parts (event heap, network model, emulator fabric); every
claimant is a `GlobalLock` driven by `ClaimantHost`, a shell with its own monotonic clock
(``local = offset + rate x virtual``), pauses (SIGSTOP: the clock runs on, nothing is
processed, results queue up), crashes (all state lost; a restart is a new claimant
identity) and rate drift.

By default every DC's gate (`set_dc`) is always open: the global lock must be safe ON ITS
OWN, without the DC fence that the real host adds (that only makes it safer). A test can
close a DC's gate with `set_gate(dc, False)`.

After every event `GlobalChecker.observe` gets who believes it holds (sim/world/global_invariants.py).
Holders also write to a fenced resource every `resource_every` seconds of their clock.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from coordinator.consul.errors import ConsulTimeout
from coordinator.consul.sansio import Request, Response
from coordinator.core.globallock import GlobalLock
from coordinator.core.plumbing import Inflight, Result
from coordinator.core.protocol import CancelRequest, Command, SendRequest
from coordinator.core.topology import DcSpec, GlobalLockSpec, Timers, Topology
from sim.world.clock import EventQueue, Timer
from sim.world.fabric import Call, Fabric
from sim.world.global_invariants import GlobalChecker
from sim.world.network import Network

Step = Callable[[GlobalLock, float], list[Command]]
GATE_HORIZON = 1e6


class ClaimantHost:
    RUNNING, PAUSED, DOWN = "running", "paused", "down"

    def __init__(self, world: GlobalWorld, dc: str, rate: float = 1.0, offset: float = 1000.0) -> None:
        self.world = world
        self.dc = dc
        self.rate = rate
        self.offset = offset
        self.mode = self.DOWN
        self.incarnation = 0
        self.lock: GlobalLock | None = None
        self.inflight = Inflight()
        self._calls: dict[str, tuple[Call, Timer]] = {}
        self._queued: list[Step] = []
        self._timer: Timer | None = None
        self.next_resource_write = 0.0

    @property
    def ident(self) -> str:
        return f"{self.dc}/c{self.incarnation}"

    def local(self) -> float:
        return self.offset + self.rate * self.world.queue.now

    def virtual(self, local: float) -> float:
        return (local - self.offset) / self.rate

    def set_rate(self, rate: float) -> None:
        now_local = self.local()
        self.rate = rate
        self.offset = now_local - rate * self.world.queue.now
        self._rearm()

    def start(self) -> None:
        self.incarnation += 1
        self.inflight = Inflight()
        w = self.world
        self.lock = GlobalLock(spec=w.spec, topology=w.topology, dc=self.dc, inflight=self.inflight)
        self.mode = self.RUNNING
        ident = self.ident
        self.invoke(lambda lock, now: lock.begin(now, ident))

    def crash(self) -> None:
        self.mode = self.DOWN
        self.lock = None
        for call, timer in self._calls.values():
            call.cancel()
            timer.cancel()
        self._calls.clear()
        self._queued.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def pause(self) -> None:
        if self.mode == self.RUNNING:
            self.mode = self.PAUSED

    def resume(self) -> None:
        if self.mode != self.PAUSED:
            return
        self.mode = self.RUNNING
        queued, self._queued = self._queued, []
        for step in queued:
            self.invoke(step)
        self.invoke(lambda lock, now: [])

    def invoke(self, step: Step) -> None:
        if self.mode == self.DOWN or self.lock is None:
            return
        if self.mode == self.PAUSED:
            self._queued.append(step)
            return
        lock, now = self.lock, self.local()
        cmds = step(lock, now)
        cmds += lock.set_dc(now, self.world.gate_until(self.dc, now))
        due = lock.next_deadline()
        if due is not None and now >= due:
            cmds += lock.on_timer(now)
        for cmd in cmds:
            self._execute(cmd)
        self._maybe_write_resource(lock, now)
        self._rearm()

    def _maybe_write_resource(self, lock: GlobalLock, now: float) -> None:
        if lock.valid_until(now) is None or lock.term is None or now < self.next_resource_write:
            return
        self.next_resource_write = now + self.world.resource_every
        self.world.checker.resource_write(self.world.queue.now, self.ident, lock.term)

    def _rearm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.lock is None or self.mode == self.DOWN:
            return
        due = self.lock.next_deadline()
        if due is None:
            return
        self._timer = self.world.queue.schedule(self.virtual(due), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self.mode == self.PAUSED:
            return
        self.invoke(lambda lock, now: lock.on_timer(now))

    def _execute(self, cmd: Command) -> None:
        if isinstance(cmd, SendRequest):
            self._send(cmd.tag, cmd.request)
        elif isinstance(cmd, CancelRequest):
            entry = self._calls.pop(cmd.tag, None)
            if entry is not None:
                entry[0].cancel()
                entry[1].cancel()

    def _send(self, tag: str, request: Request) -> None:
        timeout = request.timeout if request.timeout is not None else 10.0
        call = self.world.fabric.call(self.dc, request, lambda resp: self._result(tag, resp))
        timer = self.world.queue.after(timeout / self.rate, self._timed_out, tag)
        self._calls[tag] = (call, timer)

    def _timed_out(self, tag: str) -> None:
        entry = self._calls.pop(tag, None)
        if entry is not None:
            entry[0].cancel()
            self._deliver(tag, ConsulTimeout("client timeout"))

    def _result(self, tag: str, response: Response) -> None:
        entry = self._calls.pop(tag, None)
        if entry is not None:
            entry[1].cancel()
            self._deliver(tag, response)

    def _deliver(self, tag: str, result: Result) -> None:
        def step(lock: GlobalLock, now: float) -> list[Command]:
            pending = self.inflight.pop(tag)
            return lock.handle(pending, result, now) if pending is not None else []

        self.invoke(step)


class GlobalWorld:
    """`n` DCs (weights 1 unless given), one claimant host per DC, one lock."""

    def __init__(
        self,
        dcs: tuple[str, ...] = ("dc1", "dc2", "dc3"),
        *,
        seed: int = 1,
        spec: GlobalLockSpec | None = None,
        weights: dict[str, int] | None = None,
        rates: dict[str, float] | None = None,
        max_drift: float = 0.01,
        resource_every: float = 0.1,
    ) -> None:
        self.rng = random.Random(seed)
        self.queue = EventQueue()
        self.spec = spec or GlobalLockSpec("g")
        w = weights or {}
        self.topology = Topology(
            cluster="sim",
            datacenters=tuple(DcSpec(d, w.get(d, 1)) for d in dcs),
            timers=Timers(max_drift=max_drift),
            global_locks=(self.spec,),
        )
        self.network = Network(dcs, self.rng)
        self.fabric = Fabric(self.queue, self.network, self.rng, dcs)
        self.checker = GlobalChecker()
        self.resource_every = resource_every
        self.gates: dict[str, bool] = {d: True for d in dcs}
        self._cut_ids: dict[tuple[str, str], int] = {}
        self._next_fault = 0
        r = rates or {}
        self.hosts = {
            d: ClaimantHost(self, d, rate=r.get(d, 1.0), offset=1000.0 + 17.0 * i) for i, d in enumerate(dcs)
        }
        for host in self.hosts.values():
            host.start()

    # --- faults -------------------------------------------------------------------------

    def cut(self, src: str, dst: str) -> None:
        """Cut the one-way link src -> dst (messages vanish; callers' timeouts fire)."""
        if (src, dst) in self._cut_ids:
            return
        self._next_fault += 1
        self._cut_ids[(src, dst)] = self._next_fault
        self.network.cut(self._next_fault, [(src, dst)])
        self.fabric.set_link(src, dst, False)

    def heal(self, src: str, dst: str) -> None:
        fid = self._cut_ids.pop((src, dst), None)
        if fid is not None:
            self.network.uncut(fid)
            self.fabric.set_link(src, dst, True)

    def isolate(self, dc: str) -> None:
        for other in self.hosts:
            if other != dc:
                self.cut(dc, other)
                self.cut(other, dc)

    def heal_all(self) -> None:
        for src, dst in list(self._cut_ids):
            self.heal(src, dst)

    def set_gate(self, dc: str, open_: bool) -> None:
        self.gates[dc] = open_
        self.hosts[dc].invoke(lambda lock, now: [])

    def gate_until(self, dc: str, local_now: float) -> float | None:
        return local_now + GATE_HORIZON if self.gates[dc] else None

    # --- running ------------------------------------------------------------------------

    def holding(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for host in self.hosts.values():
            lock = host.lock
            if lock is None or host.mode == host.DOWN:
                continue
            if lock.valid_until(host.local()) is not None and lock.term is not None:
                out[host.ident] = lock.term
        return out

    def holder(self) -> str | None:
        held = self.holding()
        return next(iter(held)) if len(held) == 1 else None

    def run_until(self, t: float) -> None:
        self.queue.run_until(t, self._check)

    def run_for(self, dt: float) -> None:
        self.run_until(self.queue.now + dt)

    def _check(self) -> None:
        self.checker.observe(self.queue.now, self.holding())

    def wait_for(self, pred: Callable[[], bool], limit: float, step: float = 0.01) -> float | None:
        """Run until `pred()` holds (checked every `step`); the virtual time it took, or None."""
        start = self.queue.now
        while self.queue.now - start < limit:
            if pred():
                return self.queue.now - start
            self.run_for(step)
        return None
