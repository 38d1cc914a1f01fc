"""Builds the `StatusSnapshot` of a ReplicaCore (display only; decides nothing).

It reads the answer with `ReplicaCore.peek`, never `may_write`: showing the answer hands
no "yes" out, so status reads, metrics scrapes and transition logging never move
`granted_until` (and never delay a graceful stop).

Every value is converted to builtins (str, int, float, bool, dict, tuple) so the daemon
can JSON-encode it with `dataclasses.asdict`.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING

from coordinator.core.protocol import QuorumStatus, StatusSnapshot, TransitionRecord
from coordinator.core.quorum import takeover_in
from coordinator.core.timers import derive

if TYPE_CHECKING:
    from coordinator.core.replica import ReplicaCore


def build_status(core: ReplicaCore, now: float) -> StatusSnapshot:
    answer = core.peek(now)
    rnd = core.last_round
    quorum: QuorumStatus | None = None
    directed: dict[str, dict[str, bool]] = {}
    undirected: dict[str, dict[str, bool]] = {}
    takeover: dict[str, float] = {}
    if rnd is not None:
        d = rnd.decision
        quorum = QuorumStatus(
            in_quorum=d.in_quorum,
            members=tuple(d.members),
            weight=d.weight,
            threshold=float(d.threshold),
            reason=d.reason,
            round_started_at=rnd.t0,
        )
        directed = rnd.matrix.as_dict()
        undirected = {a: {b: rnd.matrix.link(a, b) for b in rnd.matrix.dcs if b != a} for a in rnd.matrix.dcs}
        if core.prober is not None and d.in_quorum:
            takeover = {
                dc: round(v, 3)
                for dc, v in takeover_in(
                    core.dc, core.topology, core.prober.tracker, d.members, now, core.timers
                ).items()
            }
    lease_remaining = 0.0
    if answer.allowed and core.lease_expiry is not None:
        lease_remaining = max(0.0, core.lease_expiry - now)
    timers: dict[str, float] = {k: float(v) for k, v in asdict(core.timers).items()}
    timers.update({k: float(v) for k, v in asdict(derive(core.timers)).items()})
    return StatusSnapshot(
        replica_id=core.replica_id,
        cluster=core.topology.cluster,
        dc=core.dc,
        role=core.election.role.value,
        dc_state=core.dcstate.state.value,
        allowed=answer.allowed,
        reason=answer.reason.value if answer.reason is not None else None,
        leader=core.election.leader_id,
        token=core.token,
        lease_remaining=lease_remaining,
        answer_index=core.answer_index,
        admin_fenced=core.dcstate.admin_fenced,
        witness=core.spec.witness,
        consul_error=core.health.detail or None,
        quorum=quorum,
        directed=directed,
        undirected=undirected,
        takeover_in=takeover,
        wan_members=core.extras.wan_members(),
        rtt_ms=core.extras.rtt_ms(),
        timers=timers,
        transitions=tuple(
            TransitionRecord(t.at, t.from_state.value, t.to_state.value, t.reason)
            for t in core.dcstate.history
        ),
        admin_fence=tuple(
            source for source, on in (("local", core.admin_local), ("dc-wide", core.admin_dc_wide)) if on
        ),
    )
