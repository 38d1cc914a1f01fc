"""The may-write verdict of a `ReplicaCore`: the rule, and the answer built from it.

`verdict(core, now)` is None (may write) only when: started, not shutting down, not a
witness, not admin-fenced, no local Consul error outstanding, leader, state WRITABLE,
``now < lease_expiry`` (t0 of the last confirming round + lease) and a token is set;
otherwise it is the most specific reason not to, checked in that order.

`answer_at(core, now)` is the full `MayWriteAnswer` for that verdict (`answer_for` when
the verdict is already known). It reads the core
and records nothing: `ReplicaCore.may_write` serves a cached copy of it (and records the
"yes" it hands out), `ReplicaCore.peek` returns it as is.

Pure: no clock, no IO.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from coordinator.core.dcstate import DcState
from coordinator.core.protocol import MayWriteAnswer, Reason

if TYPE_CHECKING:
    from coordinator.core.replica import ReplicaCore


def verdict(core: ReplicaCore, now: float) -> Reason | None:
    """None = may write; else the most specific reason not to."""
    if core.shutting_down:
        return Reason.SHUTTING_DOWN
    if not core.started:
        return Reason.STARTING
    if core.spec.witness:
        return Reason.WITNESS
    if core.dcstate.admin_fenced:
        return Reason.FENCED_BY_ADMIN
    if core.health.error is not None:
        return core.health.error
    election = core.election
    if not election.is_leader:
        if election.session_id is None and election.step_downs == 0:
            return Reason.STARTING
        return Reason.NOT_LEADER
    state = core.dcstate.state
    if state is DcState.CATCHING_UP:
        return Reason.CATCHING_UP
    if state is DcState.FENCED:
        return core.dcstate.fence_reason or Reason.NOT_IN_QUORUM
    if core.lease_expiry is None or now >= core.lease_expiry:
        return Reason.LEASE_EXPIRED
    if core.token is None:
        return Reason.CATCHING_UP
    return None


def answer_at(core: ReplicaCore, now: float) -> MayWriteAnswer:
    """The answer at `now` (a yes is valid until the lease expiry); records nothing."""
    return answer_for(core, verdict(core, now), now)


def answer_for(
    core: ReplicaCore, reason: Reason | None, now: float, previous: MayWriteAnswer | None = None
) -> MayWriteAnswer:
    """The answer at `now` given `reason` = `verdict(core, now)`; records nothing.

    A "no" depends only on (reason, answer_index, leader, quorum): when `previous` is a
    "no" equal in all of them it is returned as is instead of building an equal copy.
    """
    rnd = core.last_round
    decision = rnd.decision if rnd is not None else None
    quorum = tuple(sorted(decision.members)) if decision is not None and decision.in_quorum else ()
    leader = core.election.leader_id
    if reason is not None:
        if (
            previous is not None
            and previous.reason is reason
            and previous.index == core.answer_index
            and previous.leader == leader
            and previous.quorum == quorum
            and previous.dc == core.dc
        ):
            return previous
        return MayWriteAnswer(False, core.dc, core.answer_index, reason, leader, quorum=quorum)
    assert core.lease_expiry is not None
    return MayWriteAnswer(
        True, core.dc, core.answer_index, None, leader, core.token, core.lease_expiry - now, quorum
    )
