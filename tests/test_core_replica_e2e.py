"""End to end: 3 DCs x 2 ReplicaCores against the emulator's PURE API, in virtual time.

A tiny fixed-step world (10 ms steps): every request is evaluated by the emulated DC's
router when sent; replies are delivered on the next step; blocked queries are re-evaluated
every step; `?dc=` forwards cross the federation's links (a cut link = the request hangs
until its client timeout, as in an early Consul partition). Safety is checked after every
step: never two writable replicas in one DC, and no DC writable once a quorum DC's takeover
countdown for it has run out.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from coordinator.consul.errors import ConsulTimeout
from coordinator.consul.sansio import Request, Response
from coordinator.core.protocol import (
    AdminAction,
    CancelRequest,
    Command,
    HookResult,
    Reason,
    RunHook,
    SendRequest,
)
from coordinator.core.replica import ReplicaCore
from coordinator.core.topology import CatchUp, DcSpec, Topology
from sim.consul.api import Router
from sim.consul.federation import Federation
from sim.consul.http_types import Block, Forward, Reply
from sim.consul.http_types import Request as EmuRequest
from sim.consul.model import Datacenter, DcConfig

STEP = 0.01
DCS = ("dc1", "dc2", "dc3")


@dataclass
class Inflight:
    core: ReplicaCore
    tag: str
    dc: str
    """The DC whose router currently holds the request (changes on Forward)."""
    req: EmuRequest
    deadline: float
    resume: object = None
    reply_at: float | None = None
    reply: Response | None = None


@dataclass
class World:
    topology: Topology
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    now: float = 0.0
    cores: dict[str, list[ReplicaCore]] = field(default_factory=dict)
    dead: set[int] = field(default_factory=set)
    inflight: list[Inflight] = field(default_factory=list)
    hooks: list[tuple[ReplicaCore, RunHook, float]] = field(default_factory=list)
    hook_exit: int = 0
    violations: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.federation = Federation(list(DCS), fail_after=30.0)
        self.models = {dc: Datacenter(DcConfig(dc), self.rng) for dc in DCS}
        self.routers = {dc: Router(self.models[dc], self.federation, self.rng) for dc in DCS}
        for dc in DCS:
            self.cores[dc] = [ReplicaCore(self.topology, dc, f"{dc}-r{i}") for i in (1, 2)]
        for dc in DCS:
            for core in self.cores[dc]:
                self.execute(core, core.start(self.now))

    def all_cores(self) -> list[ReplicaCore]:
        return [c for dc in DCS for c in self.cores[dc]]

    def alive(self, core: ReplicaCore) -> bool:
        return id(core) not in self.dead

    def execute(self, core: ReplicaCore, cmds: list[Command]) -> None:
        for cmd in cmds:
            if isinstance(cmd, SendRequest):
                self.send(core, cmd.tag, cmd.request)
            elif isinstance(cmd, CancelRequest):
                self.inflight = [f for f in self.inflight if not (f.core is core and f.tag == cmd.tag)]
            elif isinstance(cmd, RunHook):
                self.hooks.append((core, cmd, self.now + 0.2))

    def send(self, core: ReplicaCore, tag: str, req: Request) -> None:
        emu = EmuRequest(req.method, req.path, req.params, {}, req.body or b"")
        timeout = req.timeout if req.timeout is not None else 30.0
        f = Inflight(core, tag, core.dc, emu, self.now + timeout)
        self.inflight.append(f)
        self.evaluate(f)

    def evaluate(self, f: Inflight) -> None:
        if f.reply is not None or f.dc == "":
            return
        out = self.routers[f.dc].handle(f.req, self.now, f.resume)  # type: ignore[arg-type]
        if isinstance(out, Forward):
            src = f.dc
            if not (self.federation.link_up(src, out.dc) and self.federation.link_up(out.dc, src)):
                f.dc = ""  # hangs until the client timeout
                return
            f.dc = out.dc
            f.req = out.request
            self.evaluate(f)
        elif isinstance(out, Block):
            f.resume = out.resume
        elif isinstance(out, Reply):
            headers = {k.lower(): v for k, v in out.headers.items()}
            f.reply = Response(out.status, headers, out.body)
            f.reply_at = self.now + STEP

    def step(self) -> None:
        self.now = round(self.now + STEP, 6)
        for model in self.models.values():
            model.advance(self.now)
        for f in list(self.inflight):
            self.evaluate(f)
        for f in list(self.inflight):
            if f not in self.inflight:
                continue
            result: Response | ConsulTimeout | None = None
            if f.reply is not None and f.reply_at is not None and f.reply_at <= self.now:
                result = f.reply
            elif self.now >= f.deadline:
                result = ConsulTimeout("client timeout")
            if result is None:
                continue
            self.inflight.remove(f)
            if self.alive(f.core):
                self.execute(f.core, f.core.on_response(f.tag, result, self.now))
        for core, hook, done_at in list(self.hooks):
            if done_at <= self.now:
                self.hooks.remove((core, hook, done_at))
                if self.alive(core):
                    self.execute(core, core.on_hook_done(hook.tag, HookResult(self.hook_exit), self.now))
        for core in self.all_cores():
            deadline = core.next_deadline()
            if self.alive(core) and deadline is not None and deadline <= self.now:
                self.execute(core, core.on_timer(self.now))
        self.check_safety()

    def run(self, seconds: float) -> None:
        end = self.now + seconds
        while self.now < end:
            self.step()

    def writable(self, dc: str) -> list[ReplicaCore]:
        return [c for c in self.cores[dc] if self.alive(c) and c.may_write(self.now).allowed]

    def check_safety(self) -> None:
        for core in self.all_cores():
            if self.alive(core) and core.may_write(self.now) != core._compute(self.now):
                self.violations.append(f"{self.now:.2f}: cached answer differs for {core.replica_id}")
        for dc in DCS:
            if len(self.writable(dc)) > 1:
                self.violations.append(f"{self.now:.2f}: two writable replicas in {dc}")
        for dc in DCS:
            for core in self.cores[dc]:
                if not self.alive(core) or core.prober is None:
                    continue
                for other, left in core.status(self.now).takeover_in.items():
                    if left <= 0 and self.writable(other):
                        self.violations.append(f"{self.now:.2f}: {other} writable after {dc} may take over")

    def spy_sends(self, core: ReplicaCore) -> list[tuple[float, str]]:
        """Records (time, tag) of every request `core` sends from now on."""
        log: list[tuple[float, str]] = []
        send = self.send

        def spying(c: ReplicaCore, tag: str, req: Request) -> None:
            if c is core:
                log.append((self.now, tag))
            send(c, tag, req)

        self.send = spying  # type: ignore[method-assign]
        return log

    def leader(self, dc: str) -> ReplicaCore | None:
        leaders = [c for c in self.cores[dc] if self.alive(c) and c.election.is_leader]
        return leaders[0] if len(leaders) == 1 else None

    def cut(self, dc: str, up: bool) -> None:
        for other in DCS:
            if other != dc:
                self.federation.set_link(dc, other, up, self.now)
                self.federation.set_link(other, dc, up, self.now)


def topology(**catch_up: object) -> Topology:
    return Topology("e2e", tuple(DcSpec(d) for d in DCS), catch_up=CatchUp(**catch_up))  # type: ignore[arg-type]


def test_three_dcs_become_writable_then_minority_fences_and_rejoins() -> None:
    w = World(topology(copy_prefixes=("app/",)))
    w.models["dc2"].kv_apply("set", "app/config", b"v1", now=0.0)
    w.run(8.0)
    assert w.violations == []
    tokens = {}
    for dc in DCS:
        writers = w.writable(dc)
        assert len(writers) == 1, (dc, [c.status(w.now) for c in w.cores[dc]])
        ans = writers[0].may_write(w.now)
        assert ans.token is not None and ans.token > 0 and ans.valid_for > 0
        assert set(ans.quorum) == set(DCS)
        tokens[dc] = ans.token
    copied = w.models["dc1"].kv.entries.get("app/config")
    assert copied is not None and copied.value == b"v1"

    w.cut("dc1", up=False)
    w.run(6.0)
    assert w.violations == []
    assert w.writable("dc1") == []
    leader1 = w.leader("dc1")
    assert leader1 is not None
    assert leader1.may_write(w.now).reason is not None
    assert leader1.may_write(w.now).reason.value == "not-in-quorum"  # type: ignore[union-attr]
    for dc in ("dc2", "dc3"):
        assert len(w.writable(dc)) == 1
        assert w.writable(dc)[0].may_write(w.now).token == tokens[dc]

    w.cut("dc1", up=True)
    w.run(6.0)
    assert w.violations == []
    writers = w.writable("dc1")
    assert len(writers) == 1
    new_token = writers[0].may_write(w.now).token
    assert new_token is not None and new_token > tokens["dc1"]
    states = [t.to_state for t in writers[0].status(w.now).transitions]
    assert states[-2:] == ["catching-up", "writable"]


def test_leader_crash_fails_over_with_a_higher_token() -> None:
    w = World(topology())
    w.run(8.0)
    old = w.leader("dc2")
    assert old is not None
    old_token = old.may_write(w.now).token
    assert old_token is not None
    w.dead.add(id(old))
    w.run(8.0)
    assert w.violations == []
    new = w.leader("dc2")
    assert new is not None and new is not old
    ans = new.may_write(w.now)
    assert ans.allowed and ans.token is not None and ans.token > old_token


def test_graceful_shutdown_hands_over_without_lock_delay() -> None:
    w = World(topology())
    w.run(8.0)
    old = w.leader("dc3")
    assert old is not None
    last_yes_end = old.granted_until  # check_safety asks may_write every step
    assert last_yes_end > w.now
    w.execute(old, old.on_admin(AdminAction.SHUTDOWN, w.now))
    assert old.may_write(w.now).reason is not None
    other = next(c for c in w.cores["dc3"] if c is not old)
    while w.now < last_yes_end:  # the key stays ours until our last yes ran out
        assert not old.finished and not other.election.is_leader
        w.step()
    w.run(1.0)  # then ?release= (no lock-delay): the other replica takes over at once
    assert old.finished
    assert old.next_deadline() is None
    new = w.leader("dc3")
    assert new is not None and new is not old
    w.run(3.0)
    assert w.violations == []
    assert len(w.writable("dc3")) == 1


def test_hook_gates_writable_and_failure_keeps_fenced() -> None:
    w = World(topology(hook=("true",)))
    w.hook_exit = 1
    w.run(6.0)
    assert w.violations == []
    assert all(w.writable(dc) == [] for dc in DCS)
    leader = w.leader("dc1")
    assert leader is not None and leader.may_write(w.now).reason is not None
    w.hook_exit = 0
    w.run(8.0)
    assert all(len(w.writable(dc)) == 1 for dc in DCS)


def test_local_consul_leader_loss_fences_with_reason_and_recovers() -> None:
    w = World(topology())
    w.run(8.0)
    leader = w.leader("dc1")
    assert leader is not None
    old_token = leader.may_write(w.now).token
    assert old_token is not None
    w.models["dc1"].set_leader(False, w.now)
    w.run(3.0)
    assert w.writable("dc1") == []
    reasons = {c.may_write(w.now).reason for c in w.cores["dc1"]}
    assert reasons <= {Reason.NO_CONSUL_LEADER, Reason.NOT_LEADER}
    assert Reason.NO_CONSUL_LEADER in reasons
    assert len(w.writable("dc2")) == 1 and len(w.writable("dc3")) == 1
    w.models["dc1"].set_leader(True, w.now)
    w.run(10.0)
    assert w.violations == []
    writers = w.writable("dc1")
    assert len(writers) == 1
    token = writers[0].may_write(w.now).token
    assert token is not None and token > old_token


def test_one_way_cut_breaks_the_link_for_both_ends() -> None:
    w = World(topology())
    w.run(8.0)
    w.federation.set_link("dc1", "dc2", False, w.now)
    w.run(5.0)
    assert w.violations == []
    for dc in ("dc1", "dc2"):
        leader = w.leader(dc)
        assert leader is not None
        snap = leader.status(w.now)
        assert snap.undirected[dc]["dc2" if dc == "dc1" else "dc1"] is False
    # Each of dc1, dc2 still forms a majority with dc3: everyone stays writable.
    assert all(len(w.writable(dc)) == 1 for dc in DCS)
