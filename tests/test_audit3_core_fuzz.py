"""Audit of issue 3, behaviour 4/6 as a safety reviewer: one ReplicaCore against a small,
faithful fake of ONE Consul DC, driven by Hypothesis through arbitrary interleavings:
answers in any order and at any time, timeouts, 500s, garbage, session invalidation
(check critical) and another replica grabbing the lock only after lock-delay.

Invariants checked after every step (never "unknown means yes"):

* while another session holds the leader key, the core says no (local exclusion);
* a yes never outlives ``t0 + lease`` of the latest round whose check-session txn Consul
  APPLIED (t0 = the round's SEND time), and ``valid_for`` never exceeds ``lease``;
* every yes carries the epoch key's ModifyIndex that this core minted; tokens never
  decrease, and a yes after a fence carries a strictly higher token;
* a witness DC never says yes; a non-leader never says yes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from hypothesis import given
from hypothesis import strategies as st
from test_core_replica_driver import entry, ok, text, topo, txn_ok, txn_rolled_back

from coordinator.consul.errors import ConsulTimeout
from coordinator.consul.sansio import Request, Response
from coordinator.core.dcstate import DcState
from coordinator.core.protocol import CancelRequest, Command, HookResult, RunHook, SendRequest
from coordinator.core.replica import ReplicaCore
from coordinator.core.rows import ReachEntry, Row, encode_row
from coordinator.core.topology import DcSpec, Topology

OTHER = "other-replica-session"
EPOCH = "coordinator/c1/dc/dc1/epoch"
LEADER = "coordinator/c1/dc/dc1/leader"


@dataclass
class FakeConsul:
    """One DC's Consul as far as the core can tell: lock, sessions, epoch key, Raft index."""

    index: int = 100
    holder: str | None = None
    sessions: set[str] = field(default_factory=set)
    epoch: int = 0
    invalidated_at: float | None = None
    n_sessions: int = 0
    peer_seq: dict[str, int] = field(default_factory=dict)

    def bump(self) -> int:
        self.index += 1
        return self.index


@dataclass
class Harness:
    core: ReplicaCore
    consul: FakeConsul = field(default_factory=FakeConsul)
    now: float = 0.0
    pending: dict[str, tuple[Request, float]] = field(default_factory=dict)
    hooks: list[RunHook] = field(default_factory=list)
    applied_round_t0: float | None = None
    last_token: int | None = None
    fenced_since_token: bool = False
    minted: set[int] = field(default_factory=set)
    violations: list[str] = field(default_factory=list)

    def feed(self, cmds: list[Command]) -> None:
        for cmd in cmds:
            if isinstance(cmd, SendRequest):
                self.pending[cmd.tag] = (cmd.request, self.now)
            elif isinstance(cmd, CancelRequest):
                self.pending.pop(cmd.tag, None)
            elif isinstance(cmd, RunHook):
                self.hooks.append(cmd)
        self.check()

    def kind(self, tag: str) -> str:
        return tag.split("#", 1)[0]

    # -- the fake Consul's answers ---------------------------------------------------------

    def good(self, tag: str, req: Request, sent: float) -> Response | BaseException:
        k, cs = self.kind(tag), self.consul
        session = self.core.election.session_id
        if k in ("lock.check_register", "lock.check_pass", "lock.shutdown_deregister"):
            return ok(None)
        if k == "lock.session_create":
            cs.n_sessions += 1
            sid = f"sess-{cs.n_sessions}"
            cs.sessions.add(sid)
            return ok({"ID": sid})
        if k == "lock.renew":
            sid = req.path.rsplit("/", 1)[-1]
            if sid not in cs.sessions:
                return text(404, "Session id not found")
            return ok([{"ID": sid, "TTL": "10s", "LockDelay": 2_000_000_000, "NodeChecks": []}])
        if k == "lock.acquire":
            sid = dict(req.params).get("acquire", "")
            if sid not in cs.sessions:
                return text(500, f'invalid session "{sid}"')
            if cs.holder in (None, sid) and self.lock_delay_over():
                cs.holder = sid
                cs.bump()
                return ok(True)
            return ok(False)
        if k == "lock.watch":
            value = b'{"id":"x"}'
            return ok([entry(LEADER, value, modify=cs.index, session=cs.holder)], index=cs.index)
        if k == "round.txn":
            if session is None or cs.holder != session or session not in cs.sessions:
                return txn_rolled_back(0, "lock not held")
            self.applied_round_t0 = sent
            idx = cs.bump()
            return txn_ok(entry(LEADER, None, modify=idx), entry("row", None, modify=idx))
        if k == "round.peer":
            peer = dict(req.params).get("dc", "")
            seq = cs.peer_seq.get(peer, 0) + 1
            cs.peer_seq[peer] = seq
            reach = {p: ReachEntry(ok=True, age=0.1) for p in ("dc1", "dc2", "dc3") if p != peer}
            row = Row(dc=peer, leader=f"{peer}-l/x", seq=seq, reach=reach, state="writable")
            return ok([entry(f"coordinator/c1/dc/{peer}/row", encode_row(row), modify=seq + 10)])
        if k == "catchup.epoch_read":
            if cs.epoch == 0:
                return Response(404, {"x-consul-index": str(cs.index)}, b"")
            return ok([entry(EPOCH, b"{}", modify=cs.epoch)], index=cs.index)
        if k == "catchup.mint":
            ops = json.loads(req.body or b"[]")
            cas = ops[1]["KV"].get("Index", 0)
            if session is None or cs.holder != session:
                return txn_rolled_back(0, "lock not held")
            if cas != cs.epoch:
                return txn_rolled_back(1, "cas failed")
            cs.epoch = cs.bump()
            self.minted.add(cs.epoch)
            return txn_ok(entry(LEADER, None, modify=cs.epoch), entry(EPOCH, None, modify=cs.epoch))
        return text(500, "not emulated")

    def lock_delay_over(self) -> bool:
        inv = self.consul.invalidated_at
        return inv is None or self.now >= inv + self.core.timers.lock_delay

    # -- actions -------------------------------------------------------------------------

    def answer(self, pick: int, how: str) -> None:
        if not self.pending:
            return
        tags = sorted(self.pending, key=lambda t: int(t.split("#", 1)[1]))
        tag = tags[pick % len(tags)]
        req, sent = self.pending.pop(tag)
        result: Response | BaseException
        if how == "good":
            result = self.good(tag, req, sent)
        elif how == "500":
            result = text(500, "No cluster leader")
        elif how == "timeout":
            result = ConsulTimeout("client timeout")
        else:
            result = Response(200, {}, b"\x00garbage{")
        self.feed(self.core.on_response(tag, result, self.now))

    def advance(self, dt: float) -> None:
        target = self.now + dt
        while True:
            deadline = self.core.next_deadline()
            if deadline is None or deadline > target:
                break
            self.now = max(self.now, deadline)
            self.feed(self.core.on_timer(self.now))
        self.now = target
        self.feed(self.core.on_timer(self.now))

    def invalidate(self) -> None:
        """Our session dies (its check went critical): the key is free after lock-delay."""
        cs = self.consul
        session = self.core.election.session_id
        if session is None or session not in cs.sessions:
            return
        cs.sessions.discard(session)
        if cs.holder == session:
            cs.holder = None
            cs.invalidated_at = self.now
            cs.bump()

    def grab(self) -> None:
        """Another replica takes the free key (Consul allows it only after lock-delay)."""
        cs = self.consul
        if cs.holder is None and self.lock_delay_over():
            cs.holder = OTHER
            cs.bump()

    def release_other(self) -> None:
        if self.consul.holder == OTHER:
            self.consul.holder = None
            self.consul.bump()

    def hook(self, code: int | None) -> None:
        if self.hooks:
            h = self.hooks.pop(0)
            self.feed(self.core.on_hook_done(h.tag, HookResult(code), self.now))

    # -- invariants ----------------------------------------------------------------------

    def check(self) -> None:
        ans = self.core.may_write(self.now)
        if self.core.state is DcState.FENCED and self.last_token is not None:
            self.fenced_since_token = True
        if not ans.allowed:
            return
        lease = self.core.timers.lease
        where = f"t={self.now:.3f}"
        if self.consul.holder == OTHER:
            self.violations.append(f"{where}: yes while another session holds the leader key")
        if self.core.spec.witness:
            self.violations.append(f"{where}: a witness said yes")
        if not self.core.election.is_leader:
            self.violations.append(f"{where}: a non-leader said yes")
        t0 = self.applied_round_t0
        if t0 is None or self.now >= t0 + lease:
            self.violations.append(f"{where}: yes beyond t0 + lease of the last applied round ({t0})")
        if not 0 < ans.valid_for <= lease:
            self.violations.append(f"{where}: valid_for {ans.valid_for} outside (0, lease]")
        token = ans.token
        if token is None or token not in self.minted:
            self.violations.append(f"{where}: token {token} was never minted")
        elif self.last_token is not None:
            if token < self.last_token:
                self.violations.append(f"{where}: token went down {self.last_token} -> {token}")
            if self.fenced_since_token and token <= self.last_token:
                self.violations.append(f"{where}: token {token} reused after a fence")
        if token is not None:
            if token != self.last_token:
                self.fenced_since_token = False
            self.last_token = token


HOW = st.sampled_from(["good"] * 6 + ["500", "timeout", "garbage"])
ACTIONS = st.one_of(
    st.tuples(st.just("answer"), st.integers(0, 30), HOW),
    st.tuples(st.just("advance"), st.floats(0.0, 1.2), st.just("")),
    st.tuples(st.just("invalidate"), st.just(0), st.just("")),
    st.tuples(st.just("grab"), st.just(0), st.just("")),
    st.tuples(st.just("release"), st.just(0), st.just("")),
    st.tuples(st.just("hook"), st.sampled_from([0, 0, 1]), st.just("")),
)


def run(core: ReplicaCore, steps: list[tuple[str, float, str]]) -> Harness:
    h = Harness(core)
    h.feed(core.start(h.now))
    for name, arg, how in steps:
        if name == "answer":
            h.answer(int(arg), how)
        elif name == "advance":
            h.advance(float(arg))
        elif name == "invalidate":
            h.invalidate()
        elif name == "grab":
            h.grab()
        elif name == "release":
            h.release_other()
        else:
            h.hook(int(arg))
    return h


def happy_prefix() -> list[tuple[str, float, str]]:
    """Enough good answers and time to reach WRITABLE, so the fuzz starts from a yes too."""
    out: list[tuple[str, float, str]] = []
    for _ in range(12):
        out += [("answer", 0, "good")] * 6 + [("advance", 0.3, "")]
    return out


@given(st.lists(ACTIONS, max_size=120), st.booleans())
def test_replica_core_invariants_under_arbitrary_interleavings(
    steps: list[tuple[str, float, str]], prefix: bool
) -> None:
    core = ReplicaCore(topo(), "dc1", "r1")
    h = run(core, (happy_prefix() if prefix else []) + steps)
    assert h.violations == []


@given(st.lists(ACTIONS, max_size=80))
def test_witness_never_says_yes(steps: list[tuple[str, float, str]]) -> None:
    core = ReplicaCore(topo(witness="dc1"), "dc1", "r1")
    h = run(core, happy_prefix() + steps)
    assert h.violations == []


def test_happy_prefix_reaches_a_yes() -> None:
    """The harness is faithful enough to make a core writable (else the fuzz proves nothing)."""
    core = ReplicaCore(topo(), "dc1", "r1")
    h = run(core, happy_prefix())
    assert h.violations == []
    ans = core.may_write(h.now)
    assert ans.allowed, ans
    assert ans.token == h.consul.epoch


def test_lost_lock_then_grabbed_is_no() -> None:
    core = ReplicaCore(topo(), "dc1", "r1")
    h = run(core, happy_prefix())
    assert core.may_write(h.now).allowed
    h.invalidate()
    h.advance(core.timers.lock_delay)
    h.grab()
    assert h.violations == []
    assert not core.may_write(h.now).allowed


def test_topology_with_unused_witness_is_accepted() -> None:
    t = Topology("c1", (DcSpec("dc1"), DcSpec("dc2"), DcSpec("dc3", witness=True)))
    assert ReplicaCore(t, "dc1", "r1").may_write(0.0).allowed is False
