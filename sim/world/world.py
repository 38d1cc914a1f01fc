"""The world: N emulated Consul DCs, 1-3 real coordinator cores per DC, a network, faults,
simulated applications writing to a fenced resource, and the invariant checker.

Everything runs on one `EventQueue` and one seeded `random.Random`, so a run is a pure
function of (scenario, seed): the same seed gives a byte-identical history.

Contract of `World.run()`: processes every event up to `duration`, feeding every history
event to the `Checker` as it is emitted (and firing the checker's time-based invariants
at their deadlines), and returns a `RunResult`. Violations never stop the run.

Simulated application ("writer"): every `write_interval` (jittered) each running replica
is asked may-write; on yes, the application prepares a write for a few milliseconds (a
pause in that window delays it) and sends it with the token to the DC's protected
resource, which accepts it iff the token is >= the highest it has seen.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from coordinator.core.election import Role
from coordinator.core.protocol import Reason
from coordinator.core.topology import Topology
from sim.checker import Checker, Violation
from sim.history import Event, meta_event
from sim.world import faults as fault_ops
from sim.world import operator
from sim.world.clock import EventQueue, Timer
from sim.world.fabric import LOCAL_HOP, Fabric
from sim.world.faults import ActiveFault, FaultSpec
from sim.world.host import ReplicaHost
from sim.world.network import Link, Network

WRITE_PREP = 0.02
"""Upper bound of the application's think time between a yes and its write (seconds)."""


@dataclass
class WorldConfig:
    replicas: Mapping[str, int]
    seed: int
    base_delay: float = 0.005
    jitter: float = 0.002
    base_loss: float = 0.0
    clock_drift: str = "random"
    hook_duration: tuple[float, float] = (0.2, 2.0)
    write_interval: float = 1.0
    write_prep: float = WRITE_PREP
    liveness_bound: float | None = None
    scenario: str | None = None
    buggify: bool = False
    """Slow some local Consul replies at random (see Fabric.buggify)."""
    record: bool = True
    """Keep the history in memory (needed for reports and the byte-identical log)."""


@dataclass
class RunResult:
    seed: int
    simulated_s: float
    violations: list[Violation]
    history: list[Event]
    events: int
    requests: int
    stats: dict[str, int] = field(default_factory=dict)


class World:
    def __init__(self, topology: Topology, config: WorldConfig) -> None:
        self.topology = topology
        self.config = config
        self.rng = random.Random(config.seed)
        self.queue = EventQueue()
        self.dc_names = topology.names
        self.network = Network(
            self.dc_names, self.rng, config.base_delay, config.jitter, config.base_loss
        )
        self.fabric = Fabric(self.queue, self.network, self.rng, self.dc_names)
        self.fabric.buggify = config.buggify
        self.hook_failure: dict[str, str] = {}
        self.hook_duration = config.hook_duration
        self.history: list[Event] = []
        meta = meta_event(topology, config.seed, "sim", config.replicas, config.scenario)
        self._emit_raw(meta)
        self.checker = Checker(meta, config.liveness_bound)
        self.violations: list[Violation] = []
        self.hosts: dict[str, list[ReplicaHost]] = {}
        drift = topology.timers.max_drift
        for dc in self.dc_names:
            hosts = []
            for i in range(config.replicas.get(dc, 1)):
                rate = 1.0 + self.rng.uniform(-drift, drift) if config.clock_drift == "random" else 1.0
                offset = self.rng.uniform(0.0, 10_000.0)
                hosts.append(ReplicaHost(self, topology, dc, f"{dc}-{i + 1}", rate, offset))
            self.hosts[dc] = hosts
        self._records: dict[str, tuple[object, ...]] = {}
        self._global_names = tuple(spec.name for spec in topology.global_locks)
        self._holds: dict[tuple[str, str], tuple[str, int | None, float | None]] = {}
        """(replica, lock) -> the last emitted (holder, term, until) of `global` events."""
        self._resource_max: dict[str, int] = {}
        self._active: dict[int, ActiveFault] = {}
        self._flaps: dict[int, Timer] = {}
        self._next_fault_id = 0
        self._app_pending: dict[str, list[tuple[str, int]]] = {}
        self.writes = 0
        self.rejected_writes = 0
        for dc in self.dc_names:
            for host in self.hosts[dc]:
                self.queue.schedule(self.rng.uniform(0.0, 1.0), host.start)
                first_write = 1.0 + self.rng.uniform(0.0, config.write_interval)
                self.queue.schedule(first_write, self._writer_tick, host)

    # -- history ---------------------------------------------------------------------------

    def _emit_raw(self, event: Event) -> None:
        if self.config.record:
            self.history.append(event)

    def emit(self, event: Event) -> None:
        """Record one history event and check every invariant against it."""
        self._emit_raw(event)
        for violation in self.checker.feed(event):
            self._violation(violation)
        self.queue.barrier = self.checker.next_deadline()

    def _violation(self, violation: Violation) -> None:
        self.violations.append(violation)
        self._emit_raw(violation.to_event())

    def observe(self, host: ReplicaHost) -> None:
        """Emit a `replica` event if what the replica would answer changed (and `global`
        events if its belief about holding a global lock changed)."""
        if self._global_names:
            self.observe_globals(host)
        core = host.core
        if host.mode == ReplicaHost.DOWN or core is None:
            record: tuple[object, ...] = ("down", "down", False, None, None)
        elif host.mode == ReplicaHost.PAUSED:
            record = ("paused", "paused", False, None, None)
        else:
            if core.answer_index != host.last_answer_index or host.last_answer is None:
                host.last_answer = core.may_write(host.local())
                host.last_answer_index = core.answer_index
            answer = host.last_answer
            role = "leader" if core.role is Role.LEADER else "follower"
            if answer.allowed:
                state = "writable"
            elif answer.reason is Reason.CATCHING_UP:
                state = "catching-up"
            elif answer.reason is Reason.STARTING:
                state = "starting"
            else:
                state = "fenced"
            reason = None if answer.reason is None else answer.reason.value
            record = (role, state, answer.allowed, answer.token, reason)
        key = host.replica_id
        if self._records.get(key) == record:
            return
        self._records[key] = record
        fields = ("role", "state", "allowed", "token", "reason")
        event: Event = {"t": self.queue.now, "kind": "replica", "dc": host.dc, "replica": host.replica_id}
        event.update(zip(fields, record, strict=True))
        self.emit(event)

    def observe_globals(self, host: ReplicaHost) -> None:
        """Emit a `global` event per lock whose holding belief of `host` changed.

        Between two steps of a core its `valid_until` can only run out (by its own clock),
        never start or grow, so checking after every step (and clock-rate change) sees
        every instant at which a holder appears: the checker's ONE_HOLDER is exact."""
        core = host.core
        holder = f"{host.replica_id}#{host.restarts}"
        for name in self._global_names:
            term: int | None = None
            until: float | None = None
            if core is not None and host.mode != ReplicaHost.DOWN:
                lock = core.globals.locks.get(name)
                if lock is not None and lock.term is not None:
                    local_until = lock.valid_until(host.local())
                    if local_until is not None:
                        term, until = lock.term, host.virtual(local_until)
            key = (host.replica_id, name)
            last = self._holds.get(key)
            record = (holder, term, until)
            if last == record or (last is None and until is None):
                continue
            self._holds[key] = record
            self.emit({"t": self.queue.now, "kind": "global", "lock": name, "dc": host.dc,
                       "replica": host.replica_id, "holder": holder, "term": term, "until": until})

    # -- the application and its fenced resource -------------------------------------------

    def _writer_tick(self, host: ReplicaHost) -> None:
        interval = self.config.write_interval
        self.queue.after(interval * (0.8 + 0.4 * self.rng.random()), self._writer_tick, host)
        answer = host.answer()
        if answer is None or not answer.allowed or answer.token is None:
            return
        think = self.config.write_prep * self.rng.random()
        self.queue.after(think, self._write_send, host, answer.token, host.restarts)

    def _write_send(self, host: ReplicaHost, token: int, incarnation: int) -> None:
        if host.mode == ReplicaHost.DOWN or host.restarts != incarnation:
            return
        if host.mode == ReplicaHost.PAUSED:
            self._app_pending.setdefault(host.replica_id, []).append((host.dc, token))
            return
        self.queue.after(2 * LOCAL_HOP, self._write_arrive, host.dc, host.replica_id, token)

    def _write_arrive(self, dc: str, replica: str, token: int) -> None:
        highest = self._resource_max.get(dc)
        accepted = highest is None or token >= highest
        if accepted:
            self._resource_max[dc] = token
        self.writes += 1
        self.rejected_writes += 0 if accepted else 1
        self.emit({"t": self.queue.now, "kind": "write", "dc": dc, "replica": replica, "token": token,
                   "accepted": accepted})

    # -- FaultHost -------------------------------------------------------------------------

    def links_changed(self) -> None:
        for (src, dst), state in self.network.changes():
            if self.fabric.federation.link_up(src, dst) != state.up:
                self.fabric.set_link(src, dst, state.up)
            event: Event = {"t": self.queue.now, "kind": "link", "from": src, "to": dst, "up": state.up}
            if state.delay:
                event["delay"] = round(state.delay, 6)
            if state.loss:
                event["loss"] = round(state.loss, 6)
            self.emit(event)

    def host(self, dc: str, replica: str) -> ReplicaHost:
        for host in self.hosts[dc]:
            if host.replica_id == replica:
                return host
        raise KeyError(f"{dc}/{replica}")

    def resolve_replica(self, dc: str, which: str) -> str:
        hosts = self.hosts[dc]
        if which not in ("leader", "follower"):
            return which
        leaders = [h for h in hosts if h.core is not None and h.core.role is Role.LEADER]
        if which == "leader":
            return (leaders or [h for h in hosts if h.mode != ReplicaHost.DOWN] or hosts)[0].replica_id
        others = [h for h in hosts if h not in leaders and h.mode != ReplicaHost.DOWN]
        return (others or hosts)[-1].replica_id

    def crash(self, dc: str, replica: str) -> None:
        self.host(dc, replica).crash()

    def restart(self, dc: str, replica: str) -> None:
        self.host(dc, replica).restart()

    def pause(self, dc: str, replica: str) -> None:
        self.host(dc, replica).pause()

    def resume(self, dc: str, replica: str) -> None:
        host = self.host(dc, replica)
        host.resume()
        for dc_name, token in self._app_pending.pop(replica, []):
            self.queue.after(2 * LOCAL_HOP, self._write_arrive, dc_name, replica, token)

    def set_rate(self, dc: str, replica: str, rate: float) -> None:
        host = self.host(dc, replica)
        host.set_rate(rate)
        if self._global_names:
            self.observe_globals(host)

    def set_consul_leader(self, dc: str, up: bool) -> None:
        if self.fabric.models[dc].leader == up:
            return
        self.fabric.set_leader(dc, up)
        self.emit({"t": self.queue.now, "kind": "consul", "dc": dc, "leader": up})

    def admin_fence(self, dc: str, replica: str, on: bool) -> None:
        operator.admin_fence(self, dc, replica, on)

    def set_hook_failure(self, dc: str, mode: str | None) -> None:
        if mode is None:
            self.hook_failure.pop(dc, None)
        else:
            self.hook_failure[dc] = mode

    def start_flap(self, fault_id: int, links: list[Link], period: float) -> None:
        self._flap(fault_id, links, period, True)

    def _flap(self, fault_id: int, links: list[Link], period: float, cut: bool) -> None:
        if fault_id not in self._active:
            return
        if cut:
            self.network.cut(fault_id, links)
        else:
            self.network.uncut(fault_id)
        self.links_changed()
        half = period / 2 * (0.75 + 0.5 * self.rng.random())
        self._flaps[fault_id] = self.queue.after(half, self._flap, fault_id, links, period, not cut)

    # -- fault schedule --------------------------------------------------------------------

    def schedule_faults(self, specs: Sequence[FaultSpec], quiet_at: float | None) -> None:
        """Start each fault at its time; end it after its duration or at `quiet_at`."""
        for spec in specs:
            self.queue.schedule(spec.at, self._start_fault, spec, quiet_at)
        if quiet_at is not None:
            self.queue.schedule(quiet_at, self._quiet)

    def _start_fault(self, spec: FaultSpec, quiet_at: float | None) -> None:
        self._next_fault_id += 1
        fault_id = self._next_fault_id
        self._active[fault_id] = ActiveFault(fault_id, spec)
        links = fault_ops.affected_links(spec, self.dc_names) if spec.kind in fault_ops.LINK_KINDS else []
        self.emit({
            "t": self.queue.now, "kind": "fault", "phase": "start", "id": fault_id, "fault": spec.kind,
            "description": spec.describe(), "dcs": fault_ops.affected_dcs(spec, self.dc_names),
            "links": [list(link) for link in links],
        })
        self._active[fault_id] = fault_ops.start(self, fault_id, spec)
        if spec.duration is not None:
            end_at = self.queue.now + spec.duration
            if quiet_at is None or end_at < quiet_at:
                self.queue.schedule(end_at, self._end_fault, fault_id)

    def _end_fault(self, fault_id: int) -> None:
        active = self._active.pop(fault_id, None)
        if active is None:
            return
        flap = self._flaps.pop(fault_id, None)
        if flap is not None:
            flap.cancel()
        fault_ops.end(self, active)
        self.emit({
            "t": self.queue.now, "kind": "fault", "phase": "end", "id": fault_id, "fault": active.spec.kind,
            "description": active.spec.describe(), "dcs": fault_ops.affected_dcs(active.spec, self.dc_names),
            "links": [],
        })

    def _quiet(self) -> None:
        for fault_id in list(self._active):
            self._end_fault(fault_id)
        for dc in self.dc_names:
            for host in self.hosts[dc]:
                if host.mode == ReplicaHost.DOWN:
                    host.restart()
                elif host.mode == ReplicaHost.PAUSED:
                    self.resume(dc, host.replica_id)
            self.set_consul_leader(dc, True)
        self.hook_failure.clear()
        self.emit({"t": self.queue.now, "kind": "quiet"})

    # -- running ---------------------------------------------------------------------------

    def stop_faults(self) -> None:
        """End every fault now, restart/resume every replica, and declare `quiet`."""
        self._quiet()

    def inject(self, spec: FaultSpec) -> None:
        """Start `spec` now (ignoring `spec.at`); it ends after its duration, if any."""
        self._start_fault(spec, None)

    def run_until(self, t: float) -> None:
        """Process every event due by `t`, firing checker deadlines in time order."""
        self.queue.run_with_barrier(t, self._deadline)

    def _deadline(self, check_at: float) -> None:
        for violation in self.checker.advance(check_at + 1e-9):
            self._violation(violation)
        self.queue.barrier = self.checker.next_deadline()

    def run(self, duration: float) -> RunResult:
        self.run_until(duration)
        self.emit({"t": duration, "kind": "end"})
        return RunResult(
            seed=self.config.seed,
            simulated_s=duration,
            violations=self.violations,
            history=self.history,
            events=self.queue.processed,
            requests=self.fabric.requests,
            stats={"writes": self.writes, "rejected_writes": self.rejected_writes},
        )
