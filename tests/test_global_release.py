"""Graceful release of the global lock by a stopping replica (ReplicaCore SHUTDOWN) and by
hand (GlobalLock.release), in virtual time on the pure emulator (test_core_replica_e2e's
fixed-step world, 3 DCs x 2 replicas).

Checks: a stopping holder answers no at once but sends its release CAS writes only once
the last "yes" it handed out ran out (`granted_until`), and gives up the DC lock only
after they came back (or after the release budget); the next holder's first yes comes
after that end and BEFORE the holder's registers could have lapsed (last acknowledged
renewal's send time + lease + margin, in virtual time), with a higher term; a release
CAS that loses to a renewal of ours is re-read and retried.
"""

from __future__ import annotations

import base64
import json

from test_core_replica_e2e import DCS, World

from coordinator.consul.sansio import Response
from coordinator.core.global_register import Register, decode_register, encode_register
from coordinator.core.globallock import GlobalLock, GlobalRole
from coordinator.core.plumbing import Inflight
from coordinator.core.protocol import AdminAction, CancelRequest, SendRequest
from coordinator.core.replica import ReplicaCore
from coordinator.core.topology import DcSpec, GlobalLockSpec, Topology

SPEC = GlobalLockSpec("mail")


def _topology() -> Topology:
    return Topology("e2e", tuple(DcSpec(d) for d in DCS), global_locks=(SPEC,))


def _holders(w: World) -> list[tuple[ReplicaCore, int]]:
    out = []
    for core in w.all_cores():
        if w.alive(core) and not core.shutting_down:
            ans = core.globals.answer("mail", w.now)
            if ans is not None and ans.held and ans.term is not None:
                out.append((core, ans.term))
    return out


def _wait_holder(w: World, limit: float, exclude: ReplicaCore | None = None) -> tuple[ReplicaCore, int]:
    end = w.now + limit
    while w.now < end:
        w.step()
        held = _holders(w)
        assert len(held) <= 1, [(c.replica_id, t) for c, t in held]
        if held and held[0][0] is not exclude:
            return held[0]
    raise AssertionError("no holder appeared")


def _last_claim_send(core: ReplicaCore) -> float:
    lock = core.globals.locks["mail"]
    sends = [v.claim_from for v in lock.views.values() if v.claim_from is not None]
    assert sends
    return max(sends)


def test_shutdown_releases_after_the_last_yes_before_giving_up_the_dc_lock_and_hands_over() -> None:
    w = World(_topology())
    old, term = _wait_holder(w, 15.0)
    w.run(1.0)  # a few renewals
    assert _holders(w) == [(old, term)]  # a "yes" handed out (answer records its end)
    last_yes_end = old.globals.locks["mail"].granted_until
    assert last_yes_end > w.now
    last_send = _last_claim_send(old)
    lapse_at = last_send + SPEC.lease + SPEC.margin  # earliest takeover without a release
    log = w.spy_sends(old)
    cmds = old.on_admin(AdminAction.SHUTDOWN, w.now)
    sends = [c.tag for c in cmds if isinstance(c, SendRequest)]
    assert not [t for t in sends if t.startswith(("global.mail.release", "lock.shutdown"))]
    assert old.globals.releasing, "the release writes are deferred"
    assert not old.globals.answer("mail", w.now).held  # type: ignore[union-attr]
    assert not old.may_write(w.now).allowed
    w.execute(old, cmds)
    new, new_term = _wait_holder(w, SPEC.lease + SPEC.margin, exclude=old)
    took_at = w.now
    assert new_term > term
    assert took_at >= last_yes_end, (took_at, last_yes_end)  # no two holders' yes overlap
    assert took_at < lapse_at, (took_at, lapse_at)  # the release still beats the lapse
    releases = [(t, tag) for t, tag in log if tag.startswith("global.mail.release")]
    assert len(releases) == len(DCS), "one CAS per register: the index followed the last round"
    assert all(t >= last_yes_end for t, _ in releases)
    dc_steps = [t for t, tag in log if tag.startswith("lock.shutdown")]
    assert dc_steps and min(dc_steps) > max(t for t, _ in releases)
    w.run(2.0)
    assert old.finished, "the DC lock is released and the session destroyed afterwards"
    assert w.violations == []
    key = old.globals.locks["mail"].key
    regs = [w.models[dc].kv.get(key) for dc in DCS]
    values = [decode_register(e.value) for e in regs if e is not None]
    assert sum(v.holder == new.globals.locks["mail"].me and v.term == new_term for v in values) >= 2


def test_shutdown_waits_for_releases_at_most_the_release_budget() -> None:
    w = World(_topology())
    old, _ = _wait_holder(w, 15.0)
    last_yes_end = old.globals.yes_over_at  # the last yes's end + drift pad
    cmds = old.on_admin(AdminAction.SHUTDOWN, w.now)  # never executed: the writes hang
    assert not [c for c in cmds if isinstance(c, SendRequest) and c.tag.startswith("global.")]
    assert old.next_deadline() is not None and old.next_deadline() <= last_yes_end  # type: ignore[operator]
    at = old.on_timer(last_yes_end)
    tags = [c.tag for c in at if isinstance(c, SendRequest) and c.tag.startswith("global.mail.release")]
    assert tags and old.globals.releasing
    due = last_yes_end + 3 * SPEC.request_timeout
    assert not [c for c in old.on_timer(due - 0.01) if isinstance(c, CancelRequest)]  # still waiting
    assert due >= old.granted_until + old.drift_pad  # the DC-level yes (asked every step) ended too
    later = old.on_timer(due)
    cancelled = {c.tag for c in later if isinstance(c, CancelRequest)}
    assert set(tags) <= cancelled
    assert any(isinstance(c, SendRequest) and c.tag.startswith("lock.shutdown_release") for c in later)
    assert not old.globals.releasing


def test_follower_shutdown_goes_straight_to_the_dc_steps() -> None:
    w = World(_topology())
    _wait_holder(w, 15.0)
    follower = next(c for c in w.all_cores() if not c.election.is_leader)
    cmds = follower.on_admin(AdminAction.SHUTDOWN, w.now)
    assert not [c for c in cmds if isinstance(c, SendRequest) and c.tag.startswith("global.")]
    assert [c for c in cmds if isinstance(c, SendRequest) and c.tag.startswith("lock.shutdown")]


# --- GlobalLock.release by hand: a release CAS that loses is re-read and retried -------------

TOPO1 = Topology("c", (DcSpec("a"), DcSpec("b"), DcSpec("c")), global_locks=(GlobalLockSpec("g"),))


def _txn(index: int, value: bytes) -> Response:
    kv = {"Key": "k", "CreateIndex": 1, "ModifyIndex": index, "LockIndex": 0, "Flags": 0,
          "Value": base64.b64encode(value).decode()}
    return Response(200, {}, json.dumps({"Results": [{"KV": kv}], "Errors": None}).encode())


def _rolled_back() -> Response:
    body = {"Results": None, "Errors": [{"OpIndex": 0, "What": "failed to set key \"k\", index is stale"}]}
    return Response(409, {}, json.dumps(body).encode())


def _kv(index: int, value: bytes) -> Response:
    body = [{"Key": "k", "CreateIndex": 1, "ModifyIndex": index, "LockIndex": 0, "Flags": 0,
             "Value": base64.b64encode(value).decode()}]
    return Response(200, {"x-consul-index": str(index)}, json.dumps(body).encode())


def _holding_lock() -> tuple[GlobalLock, Inflight]:
    inflight = Inflight()
    lock = GlobalLock(spec=TOPO1.global_locks[0], topology=TOPO1, dc="a", inflight=inflight)
    lock.begin(0.0, "a/r1/s1")
    lock.set_dc(0.0, 100.0)
    for cmd in lock.on_timer(0.0):
        assert isinstance(cmd, SendRequest)
        p = inflight.pop(cmd.tag)
        assert p is not None
        lock.handle(p, _kv(3, encode_register(Register("", 0))), 0.01)
    for i, cmd in enumerate(lock.on_timer(0.01)):
        assert isinstance(cmd, SendRequest)
        p = inflight.pop(cmd.tag)
        assert p is not None
        lock.handle(p, _txn(10 + i, encode_register(Register("a/r1/s1", 1, i))), 0.02)
    assert lock.role is GlobalRole.HOLDER
    return lock, inflight


def test_release_cas_that_loses_to_our_renewal_is_reread_and_retried() -> None:
    lock, inflight = _holding_lock()
    cmds = lock.release(0.5, hold_off=5.0)
    assert len(cmds) == 3 and not lock.answer(0.5).held
    first = cmds[0]
    assert isinstance(first, SendRequest)
    p = inflight.pop(first.tag)
    assert p is not None
    # a renewal of ours was applied in between: the CAS is rolled back -> re-read
    again = lock.handle(p, _rolled_back(), 0.55)
    assert len(again) == 1 and isinstance(again[0], SendRequest) and again[0].request.method == "GET"
    p = inflight.pop(again[0].tag)
    assert p is not None
    # the register still names us with our term -> one more release CAS, on the new index
    retry = lock.handle(p, _kv(40, encode_register(Register("a/r1/s1", 1, 9))), 0.6)
    assert len(retry) == 1 and isinstance(retry[0], SendRequest) and retry[0].request.path == "/v1/txn"
    assert json.loads(retry[0].request.body or b"")[0]["KV"]["Index"] == 40
    p = inflight.pop(retry[0].tag)
    assert p is not None
    assert lock.handle(p, _txn(41, encode_register(Register("", 1, 10))), 0.65) == []
    assert lock.role is GlobalRole.IDLE
    assert lock.next_deadline() is not None


def test_release_not_retried_when_someone_else_took_the_register() -> None:
    lock, inflight = _holding_lock()
    cmds = lock.release(0.5)
    first = cmds[0]
    assert isinstance(first, SendRequest)
    p = inflight.pop(first.tag)
    assert p is not None
    again = lock.handle(p, _rolled_back(), 0.55)
    assert isinstance(again[0], SendRequest)
    p = inflight.pop(again[0].tag)
    assert p is not None
    assert lock.handle(p, _kv(50, encode_register(Register("b/r1/s2", 2, 1))), 0.6) == []
    assert len(inflight.of_kind("global.g.release")) == 2  # only the other two DCs' writes
