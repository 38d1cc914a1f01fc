"""`ShutdownSequence`: what a `ReplicaCore` does after SHUTDOWN, phase by phase.

The core itself answers no at once, cancels every request but the global locks' and asks
the global locks to release (`GlobalLocks.shutdown`); then (docs/operations.md,
"Stopping"), driven by `step` after every core entry point:

1. the global locks send their deferred release writes once every global "yes" ran out
   (`GlobalLocks.yes_over_at`); the sequence waits for them until
   ``max(SHUTDOWN time, yes_over_at) + release_budget()``, then abandons what is still in
   flight;
2. it waits until ``now >= granted_until + drift_pad`` (`granted_until`: the end of the
   last DC-level "yes" the core handed out; the pad covers a client whose clock runs up
   to max_drift slower than ours), then releases the DC leader key with ``?release=``,
   destroys the session and deregisters the check (`Election.shutdown`).

``?release=`` applies no lock-delay, so waiting for the mark in (2) is what keeps the
other replica's first yes after our last one ends. Both waits are core deadlines
(`next_deadline`); `budget()` bounds the whole stop. While it waits the replica keeps
passing its check and renewing its session (fire and forget): a session Consul
invalidated would arm the lock-delay and slow the hand-over.

Pure: no clock, no IO (``now`` is passed in).
"""

from __future__ import annotations

import math

from coordinator.consul import sansio as c
from coordinator.core.election import Election
from coordinator.core.global_host import GlobalLocks
from coordinator.core.plumbing import Inflight
from coordinator.core.protocol import Command
from coordinator.core.topology import Timers


class ShutdownSequence:
    """The waits of one replica's shutdown (see the module docstring). Idle until `begin`."""

    def __init__(
        self,
        *,
        timers: Timers,
        election: Election,
        globals_: GlobalLocks,
        inflight: Inflight,
        drift_pad: float,
    ) -> None:
        self.timers = timers
        self.election = election
        self.globals = globals_
        self.inflight = inflight
        self.drift_pad = drift_pad
        self.release_deadline: float | None = None
        """Phase 1: until when we wait for the global locks' release writes."""
        self.dc_release_at: float | None = None
        """Phase 2: when the DC leader key may be released."""
        self._next_pass = -math.inf
        self._next_renew = -math.inf
        """While a phase waits: when the check pass / session renew are next due."""

    def begin(self, now: float) -> None:
        """SHUTDOWN arrived at `now` (after `GlobalLocks.shutdown`): start phase 1."""
        self.release_deadline = max(now, self.globals.yes_over_at) + self.globals.release_budget()

    def budget(self) -> float:
        """Upper bound, in seconds, from SHUTDOWN to `Election.finished` when every request
        is answered or times out: the wait for the last yes (<= lease + drift_pad: a yes
        ends at most one lease after the call), the global release writes (their budget),
        then the three DC steps (release key, destroy session, deregister check; one local
        timeout each)."""
        local = max(self.timers.lease, 1.0)  # Election's timeout for local requests
        return self.timers.lease + self.drift_pad + self.globals.release_budget() + 3 * local

    def next_deadline(self) -> float | None:
        """When `step` must next run (None once the DC steps were sent: responses drive them)."""
        waits = [self.release_deadline, self.dc_release_at]
        if self.release_deadline is not None:
            waits.append(self.globals.next_deadline())
        if self.release_deadline is not None or self.dc_release_at is not None:
            waits += [self._next_pass, self._next_renew]
        due = [t for t in waits if t is not None and math.isfinite(t)]
        return min(due) if due else None

    def step(self, now: float, granted_until: float) -> list[Command]:
        """Advance the phases at `now`; `granted_until` is the core's DC-level mark. The
        global releases go first so that no register outlives its claimant's session
        unreleased (docs/global-lock.md)."""
        cmds: list[Command] = []
        if self.release_deadline is not None:
            cmds += self.globals.on_timer(now)
            if self.globals.releasing and now < self.release_deadline:
                return cmds + self._keep_alive(now)
            self.release_deadline = None
            cmds += self.globals.cancel_release(now)
            self.dc_release_at = granted_until + self.drift_pad
        if self.dc_release_at is None:
            return cmds
        if now < self.dc_release_at:
            return cmds + self._keep_alive(now)
        self.dc_release_at = None
        self._next_pass = self._next_renew = math.inf
        return cmds + self.inflight.cancel(["stopping"]) + self.election.shutdown(now)

    def _keep_alive(self, now: float) -> list[Command]:
        """Pass our check every check_interval and renew the session every session_ttl/3
        (fire and forget: answers are ignored)."""
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
