"""`ReplicaCore`: the sans-IO heart of one coordinator replica (contract: protocol.py).

It glues together, on one monotonic clock passed in as `now`:

* `Election` (election.py): check, session, leader lock, watch, step-down;
* `Prober` (probe.py): one probe round per `probe_interval` while we lead;
* `DcStateMachine` (dcstate.py): FENCED -> CATCHING_UP -> WRITABLE, never FENCED -> WRITABLE;
* `CatchUpRunner` (catchup.py): fencing token, prefix copy, hook / admin confirmation;
* `Extras` (extras.py): WAN members and RTTs for display.

After every entry point the core RECONCILES: it consumes round and catch-up outcomes and
FENCES (state FENCED, token dropped, a later yes needs catching-up and a new token) when
the lease ran out, leadership was lost, an admin fenced (sticky until unfence), or a
catch-up failed or was interrupted. Doubt that does not yet end the lease answers NO at
once without fencing (kazoo rule): a local Consul failure (reason from `health`). A round
that merely fails to confirm (a slow or lost probe) only stops extending the lease: the
lease of the last confirming round is exactly what bounds a cut-off DC's writes, so
fencing earlier would add false fences on the majority side and no safety. Then it
recomputes the may-write answer and bumps `answer_index` if the (allowed, token, reason)
triple changed; `next_deadline` includes the lease expiry so the
shell calls `on_timer` when a yes runs out.

may_write(now) says yes only when: started, not shutting down, not a witness, leader,
state WRITABLE, no local Consul error outstanding, now < lease_expiry (t0 of the last
confirming round + lease), and a token is set. Every yes it returns raises the
high-water mark `granted_until` to its end (now + valid_for = lease_expiry).

SHUTDOWN answers no at once, then, in order (docs/operations.md, "Stopping"): (1) the
global locks free their registers once every global "yes" ran out (waiting at most until
max(now, their yes_over_at) + release budget); (2) once `now >= granted_until +
drift_pad` (the DC-level mark; the pad covers a client whose clock runs up to max_drift
slower than ours), the DC leader key is released with ``?release=``, the session destroyed
and the check deregistered. ``?release=`` applies no lock-delay, so (2) waiting for the
mark is what keeps the other replica's first yes after our last one ends. Both waits are
core deadlines (`next_deadline`); `shutdown_budget()` bounds the whole stop. While it
waits the replica keeps passing its check and renewing its session (`_keep_alive`):
a session Consul invalidates would arm the lock-delay and slow the hand-over.
Nothing raises out of the core: Consul failures are typed results handled where they
arrive.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from coordinator.consul import sansio as c
from coordinator.consul.errors import ConsulUnavailable
from coordinator.consul.sansio import Response
from coordinator.core.catchup import CatchUpRunner, Outcome
from coordinator.core.dcstate import DcEvent, DcState, DcStateMachine
from coordinator.core.election import Election, Role
from coordinator.core.extras import Extras
from coordinator.core.global_host import GlobalLocks
from coordinator.core.plumbing import Inflight, Keys, LocalHealth, Result, reason_for
from coordinator.core.probe import Prober, RoundOutcome
from coordinator.core.protocol import (
    AdminAction,
    Command,
    HookResult,
    MayWriteAnswer,
    Reason,
    StatusSnapshot,
)
from coordinator.core.status import build_status
from coordinator.core.topology import Topology


class ReplicaCore:
    """One replica of the DC `dc`. See the module docstring and protocol.py."""

    def __init__(
        self, topology: Topology, dc: str, replica_id: str, *, api_address: str | None = None
    ) -> None:
        try:
            self.spec = topology.dc(dc)
        except KeyError:
            raise ValueError(f"datacenter {dc!r} is not in the topology") from None
        if not replica_id:
            raise ValueError("replica_id must not be empty")
        self.topology = topology
        self.timers = topology.timers
        self.dc = dc
        self.replica_id = replica_id
        self.keys = Keys(topology.cluster, dc)
        self.inflight = Inflight()
        self.health = LocalHealth(base=self.timers.probe_interval / 2, cap=self.timers.retry_backoff_max)
        self.election = Election(
            keys=self.keys,
            replica_id=replica_id,
            timers=self.timers,
            inflight=self.inflight,
            health=self.health,
            api_address=api_address,
        )
        self.catchup = CatchUpRunner(
            keys=self.keys,
            replica_id=replica_id,
            config=topology.catch_up,
            timers=self.timers,
            inflight=self.inflight,
            health=self.health,
        )
        self.extras = Extras(dc, self.inflight)
        self.globals = GlobalLocks(topology, dc, self.inflight)
        """Cross-DC locks (global_host.py): driven after every step while we lead the DC."""
        self.prober: Prober | None = None
        self._next_seq = 1
        self.last_round: RoundOutcome | None = None
        self.dcstate = DcStateMachine(0.0)
        self.started = False
        self.shutting_down = False
        self.started_at = 0.0
        self.token: int | None = None
        self.lease_expiry: float | None = None
        self.last_round_confirmed = False
        self._unconfirmed_reason: Reason | None = None
        """Why the latest completed round did not confirm (None after a confirming one)."""
        self._answer_key: tuple[bool, int | None, Reason | None] | None = None
        self._answer_index = 0
        self._cached: MayWriteAnswer | None = None
        self._release_deadline: float | None = None
        """While shutting down: until when we wait for the global locks' release writes."""
        self._dc_release_at: float | None = None
        """While shutting down, after the global releases: when the DC key may be released."""
        self.granted_until = -math.inf
        """High-water mark of every yes `may_write` returned (the end of the latest one)."""
        rho = self.timers.max_drift
        self.drift_pad = self.timers.lease * 2 * rho / (1 - rho)
        """A yes lasts at most `lease`; a client counting it on a clock up to max_drift slower
        than ours stops at most this much (real time) after our clock reaches its end."""
        self._next_pass = -math.inf
        self._next_renew = -math.inf
        """While a shutdown waits: when the check pass / session renew are next due."""

    # --- protocol entry points --------------------------------------------------------

    @property
    def answer_index(self) -> int:
        return self._answer_index

    @property
    def finished(self) -> bool:
        """True once a shutdown has completed (key released, session destroyed, check deregistered)."""
        return self.election.finished

    @property
    def state(self) -> DcState:
        return self.dcstate.state

    @property
    def lock_index(self) -> int:
        """Moves whenever any global lock's (held, term) changes (long-polls on locks wait for it)."""
        return self.globals.index

    def start(self, now: float) -> list[Command]:
        if self.started:
            return []
        self.started = True
        self.started_at = now
        self.dcstate = DcStateMachine(now)
        return self._run(now, lambda: self._tick(now))

    def on_timer(self, now: float) -> list[Command]:
        if not self.started:
            return []
        return self._run(now, lambda: self._tick(now))

    def next_deadline(self) -> float | None:
        """When `on_timer` must next be called (None: nothing scheduled, e.g. after shutdown)."""
        if not self.started:
            return None
        if self.shutting_down:
            waits = [self._release_deadline, self._dc_release_at]
            if self._release_deadline is not None:
                waits.append(self.globals.next_deadline())
            if self._release_deadline is not None or self._dc_release_at is not None:
                waits += [self._next_pass, self._next_renew]
            due = [t for t in waits if t is not None and math.isfinite(t)]
            return min(due) if due else None
        times = [self.election.next_deadline(), self.catchup.next_deadline()]
        if self.prober is not None:
            times.append(self.prober.next_deadline())
            times.append(self.extras.next_deadline())
        if self.dcstate.state is not DcState.FENCED and self.lease_expiry is not None:
            times.append(self.lease_expiry)
        times.append(self.globals.next_deadline())
        finite = [t for t in times if t is not None and math.isfinite(t)]
        return min(finite) if finite else None

    def on_response(self, tag: str, result: Result, now: float) -> list[Command]:
        """Deliver a SendRequest's result: a Response or the exception the shell hit
        (normally a ConsulUnavailable). Unknown or cancelled tags are ignored.
        """
        pending = self.inflight.pop(tag)
        if pending is None:
            return []
        res: Result = result
        if not isinstance(result, Response | BaseException):
            res = ConsulUnavailable(f"shell delivered {type(result).__name__}")
        owner = pending.kind.split(".", 1)[0]

        def dispatch() -> list[Command]:
            if owner == "lock":
                return self.election.handle(pending, res, now)
            if owner == "round":
                return self.prober.handle(pending, res, now) if self.prober else []
            if owner == "catchup":
                return self.catchup.handle(pending, res, now)
            if owner == "extras":
                return self.extras.handle(pending, res, now)
            if owner == "global":
                return self.globals.handle(pending, res, now)
            return []

        return self._run(now, dispatch)

    def on_hook_done(self, tag: str, result: HookResult, now: float) -> list[Command]:
        return self._run(now, lambda: self.catchup.on_hook_done(tag, result, now))

    def on_admin(self, action: AdminAction, now: float) -> list[Command]:
        if action is AdminAction.SHUTDOWN:
            return self._shutdown(now)
        if self.shutting_down:
            return []
        if action is AdminAction.FENCE:
            return self._run(now, lambda: self._fence(now, Reason.FENCED_BY_ADMIN, admin=True))
        if action is AdminAction.UNFENCE:
            return self._run(now, lambda: self._unfence(now))
        return self._run(now, lambda: self._admin_caught_up())

    def release_global(self, name: str, hold_off: float, now: float) -> list[Command]:
        """Admin hand-over of global lock `name` (GlobalLock.release): stop holding, free
        the registers, do not contend again for `hold_off` seconds. No-op while stopping."""
        if self.shutting_down:
            return []
        return self._run(now, lambda: self.globals.release(name, now, hold_off))

    def may_write(self, now: float) -> MayWriteAnswer:
        """The answer at `now` (hot path: served from the answer cached by the last entry point).

        A "no" cannot turn into a "yes" by time alone, and a "yes" only by its lease
        running out, so the cache is exact: it is rebuilt after every entry point, and a
        cached yes is re-checked against the lease expiry here. A yes handed out raises
        `granted_until` to its end (one comparison); a shutdown keeps the DC leader key
        until then.
        """
        cached = self._cached
        if cached is None:  # not started yet (start() caches): never a yes
            return self._compute(now)
        if not cached.allowed:
            return cached
        expiry = self.lease_expiry
        if expiry is None or now >= expiry:  # the lease ran out: _verdict says no
            return self._compute(now)
        if expiry > self.granted_until:
            self.granted_until = expiry
        return MayWriteAnswer(
            True, cached.dc, cached.index, None, cached.leader, cached.token, expiry - now, cached.quorum
        )

    def _compute(self, now: float) -> MayWriteAnswer:
        """The answer at `now`; records nothing (only `may_write` hands answers out)."""
        reason = self._verdict(now)
        decision = self.last_round.decision if self.last_round is not None else None
        quorum = tuple(sorted(decision.members)) if decision is not None and decision.in_quorum else ()
        if reason is not None:
            return MayWriteAnswer(
                False, self.dc, self._answer_index, reason, self.election.leader_id, quorum=quorum
            )
        assert self.lease_expiry is not None
        return MayWriteAnswer(
            True,
            self.dc,
            self._answer_index,
            None,
            self.election.leader_id,
            self.token,
            self.lease_expiry - now,
            quorum,
        )

    def status(self, now: float) -> StatusSnapshot:
        return build_status(self, now)

    # --- the verdict ------------------------------------------------------------------

    def _verdict(self, now: float) -> Reason | None:
        """None = may write; else the most specific reason not to."""
        if self.shutting_down:
            return Reason.SHUTTING_DOWN
        if not self.started:
            return Reason.STARTING
        if self.spec.witness:
            return Reason.WITNESS
        if self.dcstate.admin_fenced:
            return Reason.FENCED_BY_ADMIN
        if self.health.error is not None:
            return self.health.error
        if not self.election.is_leader:
            if self.election.session_id is None and self.election.step_downs == 0:
                return Reason.STARTING
            return Reason.NOT_LEADER
        state = self.dcstate.state
        if state is DcState.CATCHING_UP:
            return Reason.CATCHING_UP
        if state is DcState.FENCED:
            return self.dcstate.fence_reason or Reason.NOT_IN_QUORUM
        if self.lease_expiry is None or now >= self.lease_expiry:
            return Reason.LEASE_EXPIRED
        if self.token is None:
            return Reason.CATCHING_UP
        return None

    # --- internals --------------------------------------------------------------------

    def _run(self, now: float, step: Callable[[], list[Command]]) -> list[Command]:
        cmds = step()
        if not self.shutting_down:
            cmds += self._reconcile(now)
            cmds += self._drive_globals(now)
        else:
            cmds += self._after_release(now)
        key = self._key(now)
        if key != self._answer_key:
            self._answer_key = key
            self._answer_index += 1
        self._cached = self._compute(now)
        return cmds

    def _drive_globals(self, now: float) -> list[Command]:
        session = self.election.session_id
        leading = self.election.is_leader and self.prober is not None and session is not None
        identity = f"{self.dc}/{self.replica_id}/{session}" if leading else None
        dc_until = self.lease_expiry if self._verdict(now) is None else None
        return self.globals.drive(now, identity, dc_until)

    def _key(self, now: float) -> tuple[bool, int | None, Reason | None]:
        reason = self._verdict(now)
        return (reason is None, self.token if reason is None else None, reason)

    def _tick(self, now: float) -> list[Command]:
        if self.shutting_down:
            return []  # _run finishes a pending global release (_after_release)
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
            cmds += self._reconcile_once(now)
            if len(cmds) == before and not self._has_pending_outcomes():
                break
        return cmds

    def _has_pending_outcomes(self) -> bool:
        return bool(self.prober is not None and self.prober.outcomes) or self.catchup.outcome is not None

    def _reconcile_once(self, now: float) -> list[Command]:
        cmds: list[Command] = []
        if self.health.error is not None and self.dcstate.state is DcState.CATCHING_UP:
            cmds += self._fence(now, self.health.error)
        if self.prober is not None:
            for outcome in self.prober.take_outcomes():
                cmds += self._on_round(outcome, now)
        if self.prober is not None and not self.election.is_leader:
            self._next_seq = self.prober.seq + 1
            cmds += self.prober.abort()
            self.prober = None
            cmds += self._fence(now, Reason.NOT_LEADER)
        elif self.prober is None and self.election.is_leader:
            self._new_term(now)
        done = self.catchup.take_outcome()
        if done is Outcome.DONE and self.dcstate.state is DcState.CATCHING_UP:
            self.token = self.catchup.token
            self.dcstate.fire(DcEvent.CATCHUP_DONE, now)
        elif done is Outcome.FAILED:
            cmds += self._fence(now, Reason.CATCHING_UP)
        elif done is Outcome.LEADERSHIP_LOST:
            self.election.lost_lock(now)
            cmds += self._fence(now, Reason.NOT_LEADER)
        if self.prober is not None and self.election.session_id is not None:
            cmds += self.prober.on_timer(now, self.election.session_id, self.dcstate.state.value)
            cmds += self.extras.on_timer(now)
        return cmds

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

    def _unfence(self, now: float) -> list[Command]:
        self.dcstate.fire(DcEvent.ADMIN_UNFENCE, now)
        return []

    def _admin_caught_up(self) -> list[Command]:
        self.catchup.admin_caught_up()
        return []

    def _shutdown(self, now: float) -> list[Command]:
        if self.shutting_down:
            return []
        if not self.started:
            self.shutting_down = True
            self.election.stopping = self.election.finished = True
            self.election.role = Role.STOPPED
            return []
        # Every owner's requests but the global locks' (`on_response`'s dispatch): a global
        # round in flight still tells the locks the registers' current indexes.
        cmds = self.inflight.cancel(["lock", "round", "catchup", "extras"])
        cmds += self.globals.shutdown(now)
        self.catchup.abort()
        if self.prober is not None:
            self.prober.abort()
            self.prober = None
        self.token = None
        self.dcstate.fire(DcEvent.FENCE, now, Reason.SHUTTING_DOWN)
        self.shutting_down = True
        self._release_deadline = max(now, self.globals.yes_over_at) + self.globals.release_budget()
        return self._run(now, lambda: cmds)

    def shutdown_budget(self) -> float:
        """Upper bound, in seconds, from SHUTDOWN to `finished` when every request is
        answered or times out: the wait for the last yes (<= lease + drift_pad: a yes ends
        at most one lease after the call), the global release writes (their budget), then
        the three DC steps (release key, destroy session, deregister check; one local
        timeout each)."""
        local = max(self.timers.lease, 1.0)  # Election's timeout for local requests
        return self.timers.lease + self.drift_pad + self.globals.release_budget() + 3 * local

    def _after_release(self, now: float) -> list[Command]:
        """Shutdown, later phases. (1) Send the deferred global release writes when due;
        once every one came back (or the budget ran out), (2) wait until `now >=
        granted_until + drift_pad` (no client still acts on a yes of ours), then give up
        the DC leadership (release key, destroy session...). The global releases go
        first so that no register outlives its claimant's session unreleased
        (docs/global-lock.md)."""
        cmds: list[Command] = []
        if self._release_deadline is not None:
            cmds += self.globals.on_timer(now)
            if self.globals.releasing and now < self._release_deadline:
                return cmds + self._keep_alive(now)
            self._release_deadline = None
            cmds += self.globals.cancel_release(now)
            self._dc_release_at = self.granted_until + self.drift_pad
        if self._dc_release_at is None:
            return cmds
        if now < self._dc_release_at:
            return cmds + self._keep_alive(now)
        self._dc_release_at = None
        self._next_pass = self._next_renew = math.inf
        return cmds + self.inflight.cancel(["stopping"]) + self.election.shutdown(now)

    def _keep_alive(self, now: float) -> list[Command]:
        """While a shutdown waits: pass our check every check_interval and renew the
        session every session_ttl/3 (fire and forget: answers are ignored)."""
        cmds: list[Command] = []
        timeout = max(self.timers.lease, 1.0)
        if now >= self._next_pass:
            self._next_pass = now + self.timers.check_interval
            req = c.agent_check_pass(self.election.check_id, timeout=timeout)
            cmds.append(self.inflight.send("stopping.check_pass", req, now))
        session = self.election.session_id
        if session is not None and now >= self._next_renew:
            self._next_renew = now + self.timers.session_ttl / 3
            cmds.append(self.inflight.send("stopping.renew", c.session_renew(session, timeout=timeout), now))
        return cmds

    @property
    def role(self) -> Role:
        return self.election.role
