"""Unit rules of the global lock core: register codec, timer rules, majority arithmetic,
the free-register rule, and GlobalLock entry points driven by hand (no simulator)."""

from __future__ import annotations

import math

import pytest

from coordinator.consul.sansio import Response
from coordinator.core.global_register import (
    UNREADABLE,
    Register,
    check_spec,
    decode_register,
    encode_register,
    required_margin,
    tolerated_drift,
)
from coordinator.core.global_state import RegView, majority_end, majority_value
from coordinator.core.globallock import GlobalLock, GlobalRole
from coordinator.core.plumbing import Inflight
from coordinator.core.protocol import SendRequest
from coordinator.core.topology import DcSpec, GlobalLockSpec, Timers, Topology

TOPO = Topology("c", (DcSpec("a"), DcSpec("b"), DcSpec("c", weight=2)), global_locks=(GlobalLockSpec("g"),))


def test_register_roundtrip_and_garbage() -> None:
    reg = Register("a/r1/s", 7, 3)
    assert decode_register(encode_register(reg)) == reg
    for raw in (None, b"", b"[]", b"{", b'{"holder": 1, "term": 2}', b'{"holder": "x", "term": -1}',
                b'{"holder": "x", "term": true}', b"\xff"):
        assert decode_register(raw) == UNREADABLE


def test_drift_bound_matches_margin_formula() -> None:
    spec = GlobalLockSpec("g", lease=3.0, margin=0.5)
    rho = tolerated_drift(spec)
    assert required_margin(spec.lease, rho) == pytest.approx(spec.margin)
    # the bound is exactly where lease on a slow clock equals lease + margin on a fast one
    assert (spec.lease + spec.margin) / (1 + rho) == pytest.approx(spec.lease / (1 - rho))


def test_check_spec_rejects_unsafe_timers() -> None:
    assert check_spec(GlobalLockSpec("g"), Timers()) == []
    assert check_spec(GlobalLockSpec("g", margin=0.01), Timers(max_drift=0.05))
    assert check_spec(GlobalLockSpec("g", lease=1.0, renew_interval=0.5), Timers())
    assert check_spec(GlobalLockSpec("g", request_timeout=0.6), Timers())
    assert check_spec(GlobalLockSpec("a/b"), Timers())
    with pytest.raises(ValueError):
        GlobalLock(spec=GlobalLockSpec("g", margin=0.0001), topology=TOPO, dc="a", inflight=Inflight())


def test_majority_end_is_weighted_and_strict() -> None:
    assert majority_end([(10.0, 1), (5.0, 1), (7.0, 2)], 4) == 7.0
    assert majority_end([(10.0, 1), (5.0, 1)], 4) is None  # 2 of 4 is not a strict majority
    assert majority_end([(10.0, 2), (5.0, 1)], 3) == 10.0
    assert majority_end([], 3) is None


def test_majority_value_ignores_released_registers() -> None:
    views = [
        RegView("a", 1, 5, Register("x", 2)),
        RegView("b", 1, 5, Register("x", 2)),
        RegView("c", 1, 5, Register("", 2)),
    ]
    assert majority_value(views, 3) == Register("x", 2)
    views[1].value = Register("", 2)
    assert majority_value(views, 3) is None


def test_free_rule_counts_from_first_sight_and_resets_on_change() -> None:
    v = RegView("a", 1)
    assert v.free_at("me", 3.0, 0.5) is None  # unknown
    v.observe(9, Register("other", 1), now=10.0)
    assert v.free_at("me", 3.0, 0.5) == 13.5
    v.observe(9, Register("other", 1), now=12.0)  # same index seen again: clock keeps running
    assert v.free_at("me", 3.0, 0.5) == 13.5
    v.observe(11, Register("other", 1), now=12.5)  # renewed: start over
    assert v.free_at("me", 3.0, 0.5) == 16.0
    v.observe(12, Register("", 1), now=13.0)  # released: free from when seen
    assert v.free_at("me", 3.0, 0.5) == 13.0
    v.forget_index()
    assert v.free_at("me", 3.0, 0.5) is None


def _kv(index: int, value: bytes | None) -> Response:
    import base64
    import json

    if value is None:
        return Response(404, {"x-consul-index": "5"}, b"")
    body = [{"Key": "k", "CreateIndex": 1, "ModifyIndex": index, "LockIndex": 0, "Flags": 0,
             "Value": base64.b64encode(value).decode()}]
    return Response(200, {"x-consul-index": str(index)}, json.dumps(body).encode())


def _txn_ok(index: int, value: bytes) -> Response:
    import base64
    import json

    kv = {"Key": "k", "CreateIndex": 1, "ModifyIndex": index, "LockIndex": 0, "Flags": 0,
          "Value": base64.b64encode(value).decode()}
    return Response(200, {}, json.dumps({"Results": [{"KV": kv}], "Errors": None}).encode())


def test_acquire_by_hand_then_dc_gate_loss_ends_it_without_writes() -> None:
    inflight = Inflight()
    lock = GlobalLock(spec=TOPO.global_locks[0], topology=TOPO, dc="a", inflight=inflight)
    assert lock.on_timer(0.0) == [] and lock.role is GlobalRole.INACTIVE
    lock.begin(0.0, "a/r1/s1")
    lock.set_dc(0.0, 100.0)
    cmds = lock.on_timer(0.0)
    assert len(cmds) == 3 and all(isinstance(c, SendRequest) and c.request.method == "GET" for c in cmds)
    for cmd in cmds:
        assert isinstance(cmd, SendRequest)
        p = inflight.pop(cmd.tag)
        assert p is not None
        lock.handle(p, _kv(0, None), 0.05)
    assert lock.next_deadline() == pytest.approx(0.05)
    cmds = lock.on_timer(0.05)
    assert lock.role is GlobalRole.CANDIDATE and lock.term == 1
    assert all(isinstance(c, SendRequest) and c.request.path == "/v1/txn" for c in cmds)
    for i, cmd in enumerate(cmds):
        assert isinstance(cmd, SendRequest)
        p = inflight.pop(cmd.tag)
        assert p is not None
        lock.handle(p, _txn_ok(20 + i, encode_register(Register("a/r1/s1", 1, i + 1))), 0.1)
    assert lock.role is GlobalRole.HOLDER
    ans = lock.answer(0.1)
    assert ans.held and ans.term == 1 and ans.valid_for == pytest.approx(0.05 + 3.0 - 0.1)
    assert lock.valid_until(3.05) is None  # claims run from the SEND time (0.05) + lease
    before = lock.index
    assert lock.set_dc(1.0, None) == []
    assert lock.role is GlobalRole.IDLE and lock.index == before + 1
    assert not lock.answer(1.0).held
    # a new tenure of ours cannot start before the last "yes" we handed out has run out
    lock.set_dc(1.0, 100.0)
    assert lock.granted_until == pytest.approx(3.05)
    at = lock.next_deadline()
    assert at is not None and not math.isinf(at)
