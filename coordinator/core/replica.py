"""`ReplicaCore`: the sans-IO heart of one coordinator replica (contract: protocol.py).

It glues together, on one monotonic clock passed in as `now`:

* `Election` (election.py): check, session, leader lock, watch, step-down;
* `Prober` (probe.py): one probe round per `probe_interval` while we lead;
* `DcStateMachine` (dcstate.py): FENCED -> CATCHING_UP -> WRITABLE, never FENCED -> WRITABLE;
* `CatchUpRunner` (catchup.py): fencing token, prefix copy, hook / admin confirmation;
* `Extras` (extras.py): WAN members and RTTs for display.

After every entry point the core RECONCILES (reconcile.py: round and catch-up outcomes
drive the DC state; it fences when the lease ran out, leadership was lost or a catch-up
failed), drives the global locks while it leads, then recomputes the may-write answer and
bumps `answer_index` if the (allowed, token, reason) triple changed. `next_deadline`
includes the lease expiry so the shell calls `on_timer` when a yes runs out.

may_write(now) says yes only under the rule of verdict.py (leader, WRITABLE, lease
running, token set, no doubt outstanding...); every yes it hands out raises the high-water
mark `granted_until` to its end (now + valid_for = lease_expiry). `peek(now)` and
`status(now)` show the same answer without recording anything.

SHUTDOWN answers no at once, stops every owner but the global locks, and hands the rest to
`ShutdownSequence` (shutdown.py): the global locks' release writes once every global "yes"
ran out, then, once ``now >= granted_until + drift_pad``, the DC leader key, session and
check. `shutdown_budget()` bounds the whole stop.

Nothing raises out of the core: Consul failures are typed results handled where they
arrive.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from coordinator.consul.errors import ConsulUnavailable
from coordinator.consul.sansio import Response
from coordinator.core.catchup import CatchUpRunner
from coordinator.core.dcstate import DcEvent, DcState, DcStateMachine
from coordinator.core.election import Election, Role
from coordinator.core.extras import Extras
from coordinator.core.global_host import GlobalLocks
from coordinator.core.plumbing import Inflight, Keys, LocalHealth, Result
from coordinator.core.probe import Prober, RoundOutcome
from coordinator.core.protocol import (
    AdminAction,
    Command,
    HookResult,
    MayWriteAnswer,
    Reason,
    StatusSnapshot,
)
from coordinator.core.reconcile import Reconciler
from coordinator.core.shutdown import ShutdownSequence
from coordinator.core.status import build_status
from coordinator.core.topology import Topology
from coordinator.core.verdict import answer_at, answer_for, verdict


def _earliest(best: float | None, t: float | None) -> float | None:
    """`best` lowered to `t` when `t` is finite and earlier (the first of equals wins)."""
    if t is None or not math.isfinite(t) or (best is not None and t >= best):
        return best
    return t


class ReplicaCore(Reconciler):
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
        self.admin_local = False
        """Fenced by `POST /v1/fence` on this replica (until `/v1/unfence` on it)."""
        self.admin_dc_wide = False
        """The latest applied round found the DC-wide admin-fence key (reconcile.py)."""
        self._answer_key: tuple[bool, int | None, Reason | None] | None = None
        self._answer_index = 0
        self._cached: MayWriteAnswer | None = None
        self.granted_until = -math.inf
        """High-water mark of every yes `may_write` returned (the end of the latest one)."""
        rho = self.timers.max_drift
        self.drift_pad = self.timers.lease * 2 * rho / (1 - rho)
        """A yes lasts at most `lease`; a client counting it on a clock up to max_drift slower
        than ours stops at most this much (real time) after our clock reaches its end."""
        self.stopping = ShutdownSequence(
            timers=self.timers,
            election=self.election,
            globals_=self.globals,
            inflight=self.inflight,
            drift_pad=self.drift_pad,
        )
        """The phases after SHUTDOWN (shutdown.py); idle until then."""

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
            return self.stopping.next_deadline()
        # Hot path (after every step): `_earliest` over the owners' deadlines, the
        # election's first (it is already finite or None).
        best = self.election.next_deadline()
        best = _earliest(best, self.catchup.next_deadline())
        prober = self.prober
        if prober is not None:
            best = _earliest(best, prober.next_deadline())
            best = _earliest(best, self.extras.next_deadline())
        if self.dcstate.state is not DcState.FENCED:
            best = _earliest(best, self.lease_expiry)
        if self.globals.locks:
            best = _earliest(best, self.globals.next_deadline())
        return best

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
            self.admin_local = True
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
        """The answer at `now`, handed out: a yes raises `granted_until` to its end.

        Hot path: served from the answer cached by the last entry point. A "no" cannot
        turn into a "yes" by time alone, and a "yes" only into a "no" by its lease running
        out, so the cache is exact: it is rebuilt after every entry point, and a cached
        yes is re-checked against the lease expiry here. Recording the yes costs one
        comparison; a shutdown keeps the DC leader key until the mark (shutdown.py).
        """
        cached = self._cached
        if cached is None:  # not started yet (start() caches): never a yes
            return self._compute(now)
        if not cached.allowed:
            return cached
        expiry = self.lease_expiry
        if expiry is None or now >= expiry:  # the lease ran out: the verdict says no
            return self._compute(now)
        if expiry > self.granted_until:
            self.granted_until = expiry
        return MayWriteAnswer(
            True, cached.dc, cached.index, None, cached.leader, cached.token, expiry - now, cached.quorum
        )

    def peek(self, now: float) -> MayWriteAnswer:
        """The same answer as `may_write(now)`, recording nothing: for reads that show the
        answer but do not act on it (status, metrics, logs, admin responses), so they never
        delay a graceful stop."""
        return answer_at(self, now)

    def _compute(self, now: float) -> MayWriteAnswer:
        """The answer at `now`; records nothing (only `may_write` hands answers out)."""
        return answer_at(self, now)

    def status(self, now: float) -> StatusSnapshot:
        """The display snapshot (status.py); built from `peek`, so it records nothing."""
        return build_status(self, now)

    # --- internals --------------------------------------------------------------------

    def _run(self, now: float, step: Callable[[], list[Command]]) -> list[Command]:
        cmds = step()
        if not self.shutting_down:
            cmds += self._reconcile(now)
            # The verdict reads nothing the global locks change, so one evaluation serves
            # the locks' DC lease, the answer key and the cached answer.
            reason = verdict(self, now)
            cmds += self._drive_globals(now, reason)
        else:
            cmds += self.stopping.step(now, self.granted_until)
            reason = verdict(self, now)
        key = (reason is None, self.token if reason is None else None, reason)
        if key != self._answer_key:
            self._answer_key = key
            self._answer_index += 1
        self._cached = answer_for(self, reason, now, self._cached)
        return cmds

    def _drive_globals(self, now: float, reason: Reason | None) -> list[Command]:
        """Drive the global locks; `reason` is `verdict(self, now)`."""
        session = self.election.session_id
        leading = self.election.is_leader and self.prober is not None and session is not None
        identity = f"{self.dc}/{self.replica_id}/{session}" if leading else None
        dc_until = self.lease_expiry if reason is None else None
        return self.globals.drive(now, identity, dc_until)

    def _unfence(self, now: float) -> list[Command]:
        """Drops this replica's own fence; a DC-wide key still present keeps the DC fenced
        until a round reads it gone (the API deletes the key before unfencing)."""
        self.admin_local = False
        self._lift_admin_fence_if_unsourced(now)
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
        self.stopping.begin(now)
        return self._run(now, lambda: cmds)

    def shutdown_budget(self) -> float:
        """Upper bound, in seconds, from SHUTDOWN to `finished` (ShutdownSequence.budget)."""
        return self.stopping.budget()

    @property
    def role(self) -> Role:
        return self.election.role
