"""Audit of issue 3, behaviour 6: fencing tokens can be verified against Consul, and the
helper a datastore uses (coordinator.fencing) refuses stale tokens.

Runs real ReplicaCores against the emulator's pure API (the World of
tests/test_core_replica_e2e.py) and reads the epoch key back through the same router.
"""

from __future__ import annotations

import pytest
from test_core_replica_e2e import DCS, World, topology

from coordinator.consul.sansio import Response
from coordinator.fencing import FencingGuard, StaleToken, epoch_index, epoch_request, is_current
from sim.consul.http_types import Reply
from sim.consul.http_types import Request as EmuRequest


def read_epoch(w: World, dc: str) -> int:
    req = epoch_request("e2e", dc)
    out = w.routers[dc].handle(EmuRequest(req.method, req.path, req.params, {}, b""), w.now, None)
    assert isinstance(out, Reply)
    return epoch_index(Response(out.status, {k.lower(): v for k, v in out.headers.items()}, out.body))


def test_guard_accepts_equal_and_higher_refuses_lower_per_dc() -> None:
    guard = FencingGuard()
    guard.accept("dc1", 10)
    guard.accept("dc1", 10)
    guard.accept("dc2", 3)  # another DC's tokens are never compared with dc1's
    assert guard.admits("dc1", 11) and not guard.admits("dc1", 9)
    with pytest.raises(StaleToken):
        guard.accept("dc1", 9)
    guard.accept("dc1", 12)
    assert guard.highest == {"dc1": 12, "dc2": 3}
    with pytest.raises(ValueError):
        guard.accept("dc1", 0)
    with pytest.raises(ValueError):
        guard.accept("dc1", True)


def test_is_current() -> None:
    assert is_current(7, 7) and is_current(8, 7)
    assert not is_current(6, 7)
    assert not is_current(5, 0)  # no epoch was ever minted: nothing is current


def test_tokens_verify_against_the_epoch_key_across_failover() -> None:
    w = World(topology())
    assert all(read_epoch(w, dc) == 0 for dc in DCS)
    w.run(8.0)
    guard = FencingGuard()
    old = w.leader("dc2")
    assert old is not None
    old_token = old.may_write(w.now).token
    assert old_token is not None
    assert old_token == read_epoch(w, "dc2") and is_current(old_token, read_epoch(w, "dc2"))
    guard.accept("dc2", old_token)

    w.dead.add(id(old))
    w.run(8.0)
    assert w.violations == []
    new = w.leader("dc2")
    assert new is not None and new is not old
    new_token = new.may_write(w.now).token
    assert new_token is not None and new_token > old_token
    current = read_epoch(w, "dc2")
    assert new_token == current
    assert not is_current(old_token, current)
    guard.accept("dc2", new_token)
    with pytest.raises(StaleToken):
        guard.accept("dc2", old_token)


def test_tokens_verify_across_a_fence_cycle() -> None:
    w = World(topology())
    w.run(8.0)
    leader = w.leader("dc1")
    assert leader is not None
    before = leader.may_write(w.now).token
    assert before is not None
    w.cut("dc1", up=False)
    w.run(6.0)
    assert w.writable("dc1") == []
    assert is_current(before, read_epoch(w, "dc1"))  # fenced, but no newer period began yet
    w.cut("dc1", up=True)
    w.run(6.0)
    writers = w.writable("dc1")
    assert len(writers) == 1
    after = writers[0].may_write(w.now).token
    assert after is not None and after > before
    assert not is_current(before, read_epoch(w, "dc1")) and is_current(after, read_epoch(w, "dc1"))
