"""Reads that show the may-write answer hand nothing out (sans-IO, virtual time).

`ReplicaCore.peek` and `ReplicaCore.status` (what `/v1/status`, `/metrics`, the transition
log and the admin responses read) give the same answer as `may_write` but never move
`granted_until`, so they never delay a graceful stop; only `may_write` records.
"""

from __future__ import annotations

import math

from test_core_replica_e2e import World, topology

from coordinator.core.protocol import AdminAction, SendRequest
from coordinator.core.replica import ReplicaCore


class QuietWorld(World):
    """A world in which nobody asks may-write (no answer is ever handed out)."""

    def check_safety(self) -> None:
        pass


def _writable_leader(w: World, dc: str) -> ReplicaCore:
    core = w.leader(dc)
    assert core is not None and core.peek(w.now).allowed
    return core


def test_status_and_peek_show_the_yes_without_moving_granted_until() -> None:
    w = QuietWorld(topology())
    w.run(8.0)
    core = _writable_leader(w, "dc3")
    seen = core.peek(w.now)
    st = core.status(w.now)
    assert st.allowed and st.token == seen.token and st.lease_remaining == seen.valid_for > 0
    assert core.granted_until == -math.inf, "showing the answer hands nothing out"
    assert core.peek(w.now) == core.may_write(w.now), "peek is the answer may_write hands out"
    assert core.granted_until == core.lease_expiry


def test_status_reads_after_a_yes_leave_the_mark_where_may_write_put_it() -> None:
    w = QuietWorld(topology())
    w.run(8.0)
    core = _writable_leader(w, "dc3")
    core.may_write(w.now)
    mark = core.granted_until
    w.run(1.0)  # later rounds extend the lease; nobody asks may-write meanwhile
    assert core.lease_expiry is not None and core.lease_expiry > mark
    assert core.status(w.now).allowed and core.peek(w.now).allowed
    assert core.granted_until == mark


def test_a_shutdown_after_status_reads_only_waits_for_the_yes_handed_out() -> None:
    w = QuietWorld(topology())
    w.run(8.0)
    core = _writable_leader(w, "dc3")
    for _ in range(5):
        core.status(w.now)
        core.peek(w.now)
    cmds = core.on_admin(AdminAction.SHUTDOWN, w.now)
    tags = [c.tag for c in cmds if isinstance(c, SendRequest)]
    assert any(t.startswith("lock.shutdown_release") for t in tags), "no wait: no yes was handed out"
    w.execute(core, cmds)
    w.run(0.5)  # a recorded yes would hold the key for >= 1 s (lease 1.5 s, rounds every 0.5 s)
    assert core.finished
