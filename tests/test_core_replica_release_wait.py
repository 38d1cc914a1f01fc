"""A stopping DC leader keeps its leader key until its last may-write "yes" ran out.

Virtual time on the pure emulator (test_core_replica_e2e's fixed-step world, whose safety
check asks every replica's `may_write` every step: a client that is always asking).
``?release=`` applies no lock-delay, so without the wait the other replica of the DC
could say yes while a client of the old leader still acts on its last one.
"""

from __future__ import annotations

import math

from test_core_replica_e2e import World, topology

from coordinator.core.protocol import AdminAction, SendRequest
from coordinator.core.replica import ReplicaCore
from coordinator.daemon.runner import MIN_SHUTDOWN_GRACE, shutdown_grace


class QuietWorld(World):
    """A world in which nobody asks may-write (no answer is ever handed out)."""

    def check_safety(self) -> None:
        pass


def _leader(w: World, dc: str) -> ReplicaCore:
    old = w.leader(dc)
    assert old is not None
    return old


def test_may_write_records_the_end_of_every_yes_and_compute_records_nothing() -> None:
    w = QuietWorld(topology())
    w.run(8.0)
    old = _leader(w, "dc3")
    assert old._compute(w.now).allowed
    assert old.granted_until == -math.inf, "computing (caching) an answer hands nothing out"
    ans = old.may_write(w.now)
    assert ans.allowed and old.lease_expiry is not None
    assert old.granted_until == old.lease_expiry == w.now + ans.valid_for
    high = old.granted_until
    old.on_admin(AdminAction.FENCE, w.now)
    assert not old.may_write(w.now).allowed
    assert old.granted_until == high, "a no never lowers the mark"


def test_shutdown_keeps_the_dc_key_until_the_last_yes_ends_and_the_successor_says_yes_after() -> None:
    w = World(topology())
    w.run(8.0)
    old = _leader(w, "dc3")
    other = next(c for c in w.cores["dc3"] if c is not old)
    last_yes_end = old.granted_until
    assert last_yes_end > w.now + 0.5
    log = w.spy_sends(old)
    cmds = old.on_admin(AdminAction.SHUTDOWN, w.now)
    assert not old.may_write(w.now).allowed
    assert not [c for c in cmds if isinstance(c, SendRequest) and c.tag.startswith("lock.shutdown")]
    w.execute(old, cmds)
    first_yes: float | None = None
    while w.now < last_yes_end + 3.0:
        w.step()
        if first_yes is None and other.may_write(w.now).allowed:
            first_yes = w.now
    assert w.violations == []
    releases = [t for t, tag in log if tag.startswith("lock.shutdown_release")]
    assert len(releases) == 1 and releases[0] >= last_yes_end + old.drift_pad
    passes = [t for t, tag in log if tag.startswith("stopping.check_pass")]
    assert passes and max(passes) < last_yes_end, "the check stays passing while we wait"
    assert old.finished
    assert first_yes is not None and first_yes >= last_yes_end, (first_yes, last_yes_end)
    assert first_yes < last_yes_end + 1.0, "no lock-delay: the session was not invalidated"


def test_shutdown_with_no_yes_ever_handed_out_releases_the_dc_key_at_once() -> None:
    w = QuietWorld(topology())
    w.run(8.0)
    old = _leader(w, "dc3")
    assert old._compute(w.now).allowed  # it would have said yes, but nobody asked
    cmds = old.on_admin(AdminAction.SHUTDOWN, w.now)
    tags = [c.tag for c in cmds if isinstance(c, SendRequest)]
    assert any(t.startswith("lock.shutdown_release") for t in tags)
    assert not [t for t in tags if t.startswith("stopping.")]


def test_shutdown_after_the_last_yes_ran_out_releases_at_once() -> None:
    w = QuietWorld(topology())
    w.run(8.0)
    old = _leader(w, "dc3")
    assert old.may_write(w.now).allowed
    end = old.granted_until + old.drift_pad
    assert 0 < old.drift_pad < 0.05  # lease x 2 max_drift / (1 - max_drift)
    cmds = old.on_admin(AdminAction.SHUTDOWN, end)
    assert any(isinstance(c, SendRequest) and c.tag.startswith("lock.shutdown_release") for c in cmds)


def test_shutdown_budget_covers_the_wait_and_the_grace_covers_the_budget() -> None:
    w = QuietWorld(topology())
    core = w.cores["dc1"][0]
    timers = core.timers
    assert core.shutdown_budget() >= timers.lease + core.drift_pad + 3 * max(timers.lease, 1.0)
    assert shutdown_grace(core) > core.shutdown_budget()
    assert shutdown_grace(core) >= MIN_SHUTDOWN_GRACE
    assert shutdown_grace(object()) == MIN_SHUTDOWN_GRACE  # a core without a budget
