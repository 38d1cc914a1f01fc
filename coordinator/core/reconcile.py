"""`Reconciler`: how a `ReplicaCore` turns round and catch-up outcomes into DC state.

A mixin of `ReplicaCore` (it owns no state of its own: the attributes it reads and writes
are declared below and set by `ReplicaCore.__init__`). After every entry point but during
a shutdown the core calls `_reconcile`; on every timer, `_tick`.

Rules:

* the core FENCES (state FENCED, token dropped, a later yes needs catching-up and a new
  token) when the lease ran out (`_tick`: named after what the last round said, else
  lease-expired), leadership was lost, a round's view was already stale when it arrived,
  or a catch-up failed or was interrupted;
* doubt that does not yet end the lease answers NO at once without fencing (kazoo rule):
  a local Consul failure (reason from `health`; verdict.py);
* a round that merely fails to confirm (a slow or lost probe) only stops extending the
  lease: the lease of the last confirming round is exactly what bounds a cut-off DC's
  writes, so fencing earlier would add false fences on the majority side and no safety;
* a confirming round extends ``lease_expiry`` to ``t0 + lease`` (never backwards) and
  moves FENCED -> CATCHING_UP (a catch-up starts, copying from `_sources`) or keeps
  CATCHING_UP / WRITABLE; CATCHING_UP -> WRITABLE only when the catch-up is DONE, which
  sets the token. Never FENCED -> WRITABLE.
* the admin fence has two sources: this replica's own (`POST /v1/fence` on it:
  ``admin_local``) and the DC-wide key every round's txn reads (``admin_dc_wide``,
  Keys.admin_fence). Either one fences (sticky); the fence lifts only when both are
  gone. A round that finds the key fences BEFORE its confirmation is considered, so a
  new leader of an admin-fenced DC never answers yes.

Pure: no clock, no IO.
"""

from __future__ import annotations

from coordinator.core.catchup import CatchUpRunner, Outcome
from coordinator.core.dcstate import DcEvent, DcState, DcStateMachine
from coordinator.core.election import Election
from coordinator.core.extras import Extras
from coordinator.core.plumbing import Inflight, Keys, LocalHealth, reason_for
from coordinator.core.probe import Prober, RoundOutcome
from coordinator.core.protocol import Command, Reason
from coordinator.core.topology import DcSpec, Timers, Topology


class Reconciler:
    """DC-state reconciliation, mixed into `ReplicaCore` (see the module docstring)."""

    topology: Topology
    spec: DcSpec
    timers: Timers
    dc: str
    replica_id: str
    keys: Keys
    inflight: Inflight
    health: LocalHealth
    election: Election
    catchup: CatchUpRunner
    extras: Extras
    dcstate: DcStateMachine
    prober: Prober | None
    _next_seq: int
    last_round: RoundOutcome | None
    last_round_confirmed: bool
    _unconfirmed_reason: Reason | None
    token: int | None
    lease_expiry: float | None
    shutting_down: bool
    admin_local: bool
    admin_dc_wide: bool

    def _tick(self, now: float) -> list[Command]:
        if self.shutting_down:
            return []  # _run advances the shutdown phases (ShutdownSequence.step)
        cmds: list[Command] = []
        if self.dcstate.state is not DcState.FENCED and (
            self.lease_expiry is None or now >= self.lease_expiry
        ):
            # Name what ended the lease when a round told us (not-in-quorum, a local
            # error); plain lease-expired means rounds stopped completing at all.
            cmds += self._fence(now, self._unconfirmed_reason or Reason.LEASE_EXPIRED)
        cmds += self.election.on_timer(now)
        cmds += self.catchup.on_timer(now)
        return cmds

    def _reconcile(self, now: float) -> list[Command]:
        cmds: list[Command] = []
        for _ in range(8):
            before = len(cmds)
            self._reconcile_once(now, cmds)
            if len(cmds) == before and not self._has_pending_outcomes():
                break
        return cmds

    def _has_pending_outcomes(self) -> bool:
        return bool(self.prober is not None and self.prober.outcomes) or self.catchup.outcome is not None

    def _reconcile_once(self, now: float, cmds: list[Command]) -> None:
        """One reconciliation pass; appends the commands it issues to `cmds`."""
        dcstate = self.dcstate
        if self.health.error is not None and dcstate.state is DcState.CATCHING_UP:
            cmds += self._fence(now, self.health.error)
        prober = self.prober
        if prober is not None and prober.outcomes:
            for outcome in prober.take_outcomes():
                cmds += self._on_round(outcome, now)
        election = self.election
        prober = self.prober
        if prober is not None and not election.is_leader:
            self._next_seq = prober.seq + 1
            cmds += prober.abort()
            self.prober = None
            cmds += self._fence(now, Reason.NOT_LEADER)
        elif prober is None and election.is_leader:
            self._new_term(now)
        if self.catchup.outcome is not None:
            done = self.catchup.take_outcome()
            if done is Outcome.DONE and dcstate.state is DcState.CATCHING_UP:
                self.token = self.catchup.token
                dcstate.fire(DcEvent.CATCHUP_DONE, now)
            elif done is Outcome.FAILED:
                cmds += self._fence(now, Reason.CATCHING_UP)
            elif done is Outcome.LEADERSHIP_LOST:
                election.lost_lock(now)
                cmds += self._fence(now, Reason.NOT_LEADER)
        prober = self.prober
        session = election.session_id
        if prober is not None and session is not None:
            cmds += prober.on_timer(now, session, dcstate.state.value)
            cmds += self.extras.on_timer(now)

    def _new_term(self, now: float) -> None:
        session = self.election.session_id or ""
        self.prober = Prober(
            topology=self.topology,
            keys=self.keys,
            term=f"{self.replica_id}/{session}",
            started_at=now,
            inflight=self.inflight,
            health=self.health,
            first_seq=self._next_seq,
        )
        self.last_round = None
        self.last_round_confirmed = False
        self._unconfirmed_reason = None

    def _on_round(self, outcome: RoundOutcome, now: float) -> list[Command]:
        self.last_round = outcome
        if outcome.leadership_lost:
            self.election.lost_lock(now)
            self.last_round_confirmed = False
            return self._fence(now, Reason.NOT_LEADER)
        cmds = self._sync_dc_wide_fence(outcome.admin_fence, now) if outcome.txn_ok else []
        return cmds + self._use_round(outcome, now)

    def _sync_dc_wide_fence(self, present: bool, now: float) -> list[Command]:
        """Follows the DC-wide admin-fence key as the latest applied round read it."""
        if present == self.admin_dc_wide:
            return []
        self.admin_dc_wide = present
        if present:
            return self._fence(now, Reason.FENCED_BY_ADMIN, admin=True)
        self._lift_admin_fence_if_unsourced(now)
        return []

    def _lift_admin_fence_if_unsourced(self, now: float) -> None:
        """Lifts the admin fence once neither source (own call, DC-wide key) holds it."""
        if not (self.admin_local or self.admin_dc_wide):
            self.dcstate.fire(DcEvent.ADMIN_UNFENCE, now)

    def _use_round(self, outcome: RoundOutcome, now: float) -> list[Command]:
        if outcome.txn_ok:
            self.election.note_proof(outcome.t0)
        if not outcome.confirmed:
            # Absence of confirmation is not proof of a partition: the lease of the last
            # confirming round still bounds this DC's writes (docs/safety.md), so the DC
            # stays in its state until that lease runs out (`_tick`). A local Consul error
            # answers no at once through `health` (kazoo rule) without burning the token.
            self.last_round_confirmed = False
            err = outcome.local_error
            reason = reason_for(err) if err is not None else Reason.NOT_IN_QUORUM
            self._unconfirmed_reason = reason
            if self.dcstate.state is not DcState.WRITABLE:
                return self._fence(now, reason)
            return []
        self.last_round_confirmed = True
        self._unconfirmed_reason = None
        expiry = outcome.t0 + self.timers.lease
        if self.lease_expiry is None or expiry > self.lease_expiry:
            self.lease_expiry = expiry
        if now >= expiry:
            return self._fence(now, Reason.STALE_VIEW)
        if self.spec.witness or self.dcstate.admin_fenced or self.health.error is not None:
            return []
        if self.dcstate.state is DcState.FENCED and self.catchup.can_begin(now):
            session = self.election.session_id
            if session is None:
                return []
            self.dcstate.fire(DcEvent.QUORUM_CONFIRMED, now)
            sources = self._sources(outcome)
            fenced_for = now - self.dcstate.not_writable_since
            return self.catchup.begin(now, session, sources, fenced_for, self.dcstate.ever_writable)
        if self.dcstate.state is not DcState.FENCED:
            self.dcstate.fire(DcEvent.QUORUM_CONFIRMED, now)
        return []

    def _sources(self, outcome: RoundOutcome) -> list[str]:
        """Quorum members to copy from: writable ones first, non-witness before witness."""
        rows = self.prober.tracker.rows() if self.prober is not None else {}

        def rank(dc: str) -> tuple[int, int, str]:
            row = rows.get(dc)
            writable = row is not None and row.state == DcState.WRITABLE.value
            return (0 if writable else 1, 1 if self.topology.dc(dc).witness else 0, dc)

        return sorted((m for m in outcome.decision.members if m != self.dc), key=rank)

    def _fence(self, now: float, reason: Reason, *, admin: bool = False) -> list[Command]:
        cmds = self.catchup.abort() if self.dcstate.state is DcState.CATCHING_UP else []
        self.token = None
        self.dcstate.fire(DcEvent.ADMIN_FENCE if admin else DcEvent.FENCE, now, reason)
        return cmds
