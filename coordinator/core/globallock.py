"""`GlobalLock`: one cross-DC lock, as a sans-IO state machine (design: docs/global-lock.md,
proof: docs/safety.md "Global lock").

Hosted by a DC leader. The host gives it an identity when its DC leadership begins
(`begin`), tells it on every step until when its DC may write (`set_dc`; None = not
writable), forwards the results of the requests it emitted (`handle`) and calls
`on_timer` at `next_deadline()`. Every method returns the commands to execute.

Protocol, per round (every ``renew_interval``, all requests sent at the round's t0):

* for each DC's register: a CAS write through ``?dc=`` (txn ``cas`` on the ModifyIndex we
  know) when we hold or are acquiring and the register is ours or free for us; else a
  ``?consistent`` read;
* IDLE -> CANDIDATE when registers free for us weigh a strict majority, our DC is
  writable, the hold-off is over and every "yes" we ever gave has expired; the candidate
  picks ``term = 1 + max(term of every register it knows)`` and CAS-writes the free ones;
* CANDIDATE -> HOLDER when acknowledged writes weigh a strict majority; otherwise it
  releases what it won and backs off ``renew_interval x (1 + rank of its DC)``;
* HOLDER holds while the claims (send time of the acknowledged write + lease) of a strict
  majority are running AND its DC may write; the "yes" lasts until the earlier of both;
* losing the DC gate ends a tenure at once without releasing (answers handed out may still
  run; the registers lapse); `release` (graceful) ends it at once (no new "yes") and, once
  ``now >= granted_until + drift_pad`` (the end of every "yes" we handed out: `answer`
  records it; the pad covers a client whose clock runs slower than ours), writes every
  register we hold to ``holder=""`` with the same term, by CAS, so contenders need not
  wait for the lapse. Until then the writes are deferred (a core
  deadline, `next_deadline`; `releasing` is true). A release CAS that fails (a renewal of
  ours was applied first) or whose outcome is unknown is followed by one ``?consistent``
  read and, if the register still names us with that term, one more release CAS;
  `shutdown` is `release` for a host that stops for good. We do not contend again while
  a release is deferred or in flight.

Split: `RegisterViews` (global_views.py) keeps the registers' views, builds the read and
CAS requests and answers the majority questions; `ReleaseWrites` (global_release.py)
sequences the release writes; this module is the holder state machine and its rounds.

Invariants (checked by sim/world/global_invariants.py): at any instant at most one
claimant holds; terms of successive tenures strictly increase (the term is the fencing
token); no register of ours is freed before every "yes" we handed out has run out, so a
successor's first "yes" comes after our last one ends (docs/safety.md, "Global lock").
Pure: no clock, no IO, no randomness.
"""

from __future__ import annotations

import math
from typing import cast

from coordinator.core.global_register import check_spec, register_key
from coordinator.core.global_release import ReleaseWrites
from coordinator.core.global_types import GlobalAnswer, GlobalRole, Round
from coordinator.core.global_views import RegisterViews, Sent
from coordinator.core.plumbing import Inflight, Pending, Result
from coordinator.core.protocol import Command
from coordinator.core.topology import GlobalLockSpec, Topology

__all__ = ["GlobalAnswer", "GlobalLock", "GlobalRole"]


class GlobalLock:
    """One lock, one claimant (see the module docstring)."""

    def __init__(self, *, spec: GlobalLockSpec, topology: Topology, dc: str, inflight: Inflight) -> None:
        problems = check_spec(spec, topology.timers)
        if problems:
            raise ValueError(f"global lock {spec.name!r}: " + "; ".join(problems))
        self.spec = spec
        self.name = spec.name
        self.key = register_key(topology.cluster, spec.name)
        self.dc = dc
        self.rank = topology.names.index(dc)
        self.inflight = inflight
        self.regs = RegisterViews(key=self.key, spec=spec, topology=topology, inflight=inflight)
        self.views = self.regs.views
        """DC -> RegView (the same dict as `regs.views`)."""
        self.releases = ReleaseWrites(self.regs, self._kind("release"))
        self.me = ""
        self.role = GlobalRole.INACTIVE
        self.term: int | None = None
        self.dc_until: float | None = None
        self.round: Round | None = None
        self.next_round_at = math.inf
        self.hold_off_until = -math.inf
        self.granted_until = -math.inf
        """The end of the latest "yes" we handed out (`answer`), on our clock."""
        rho = topology.timers.max_drift
        self.drift_pad = min(spec.lease, topology.timers.lease) * 2 * rho / (1 - rho)
        """A "yes" lasts at most min(lease, DC lease); a client counting it on a clock up to
        max_drift slower than ours stops at most this much (real time) after our clock
        reaches its end. No tenure of ours starts, and no release write is sent, before
        ``granted_until + drift_pad`` (`yes_over_at`)."""
        self._seq = 0
        self.tenures = 0
        self.index = 1
        """Never 0 (like X-Consul-Index), so a long-poll on it always blocks."""
        self._key: tuple[bool, int | None] = (False, None)

    # --- host entry points ------------------------------------------------------------

    def begin(self, now: float, holder_id: str) -> list[Command]:
        """Our DC leadership started: contend as `holder_id` (unique per leadership)."""
        cmds = self.stop(now)
        self.me = holder_id
        self.role = GlobalRole.IDLE
        self.next_round_at = now
        return cmds + self._refresh(now)

    def stop(self, now: float) -> list[Command]:
        """DC leadership ended: stop at once, send nothing more (the registers lapse)."""
        self.role = GlobalRole.INACTIVE
        self.term = None
        self.round = None
        self.next_round_at = math.inf
        self.regs.drop_claims()
        cmds = self.inflight.cancel([self._kind("round"), self._kind("release")])
        self.releases.clear()
        self._refresh(now)
        return cmds

    def set_dc(self, now: float, valid_until: float | None) -> list[Command]:
        """Our DC may write until `valid_until` (None: it may not). Losing it ends a tenure now."""
        self.dc_until = valid_until
        if self.role in (GlobalRole.HOLDER, GlobalRole.CANDIDATE) and not self._dc_ok(now):
            self._end_tenure()
        return self._refresh(now)

    def release(self, now: float, hold_off: float = 0.0) -> list[Command]:
        """Graceful hand-over: stop holding now, then free our registers (CAS, same term)
        once every "yes" we handed out has run out (`yes_over_at`; at once if none runs).

        Safe because our claims end before the release writes are sent (we count no claim
        after this call) and the writes wait for the last "yes": a successor can only
        start after it (docs/safety.md, "Global lock, release"). We do not contend again
        for `hold_off` seconds from now, nor before the release writes came back.
        """
        if self.role is GlobalRole.INACTIVE:
            return []
        cmds = self._release_writes(now)
        self.hold_off_until = max(self.hold_off_until, now + hold_off)
        return cmds + self._refresh(now)

    def shutdown(self, now: float) -> list[Command]:
        """Our host stops for good: `release`, become INACTIVE, start no round.

        Unlike `stop`, the release writes stay pending (`releasing` says so) so the host
        can wait for them, bounded, before it gives up its DC leadership. The round in
        flight is not cancelled: its results still update the registers' indexes (no
        claim: the tenure is over), so a deferred release CAS uses the current index.
        """
        cmds: list[Command] = []
        if self.role is not GlobalRole.INACTIVE:
            cmds += self._release_writes(now)
        self.role = GlobalRole.INACTIVE
        self.next_round_at = math.inf
        self._refresh(now)
        return cmds

    @property
    def releasing(self) -> bool:
        """A release write is deferred (waiting for `yes_over_at`) or, with its re-read,
        still in flight."""
        return self.releases.releasing

    @property
    def yes_over_at(self) -> float:
        """When no client may still act on a "yes" of ours (-inf: none was handed out)."""
        return self.granted_until + self.drift_pad

    def _release_writes(self, now: float) -> list[Command]:
        """End the tenure, then CAS ``holder=""`` (same term) onto every register we claim:
        now if no "yes" of ours still runs, else at `yes_over_at` (global_release.py)."""
        term = self.term
        mine = self.regs.claimed()
        self._end_tenure()
        if term is None:
            return []
        return self.releases.start(mine, term, now, self.yes_over_at)

    def on_timer(self, now: float) -> list[Command]:
        cmds = self.releases.on_timer(now, self.me)
        if self.role is GlobalRole.INACTIVE:
            return cmds
        if self.round is not None and now >= self.round.deadline:
            cmds += self._complete(now)
        self._check_tenure(now)
        if self.round is None:
            if self.role is GlobalRole.IDLE and self._may_acquire(now):
                cmds += self._start(now, acquire=True)
            elif now >= self.next_round_at:
                cmds += self._start(now, acquire=False)
        return cmds + self._refresh(now)

    def next_deadline(self) -> float | None:
        release = self.releases.due()
        if self.role is GlobalRole.INACTIVE:
            return release if math.isfinite(release) else None
        times = [release, self.round.deadline if self.round is not None else self.next_round_at]
        if self.role is GlobalRole.HOLDER:
            end = self.regs.claims_end()
            times.append(end if end is not None else -math.inf)
            if self.dc_until is not None:
                times.append(self.dc_until)
        elif self.role is GlobalRole.IDLE and self.round is None and self.dc_until is not None:
            at = self._acquire_time() if not self.releasing else math.inf
            if at < self.dc_until:
                times.append(at)
        finite = [t for t in times if math.isfinite(t)]
        return min(finite) if finite else None

    def handle(self, p: Pending, result: Result, now: float) -> list[Command]:
        """Result of one of our requests (the host routes kinds "global.<name>.*" here)."""
        seq, dc, written = cast(Sent, p.data)
        view = self.views[dc]
        if p.kind == self.releases.kind:
            contending = self.role in (GlobalRole.HOLDER, GlobalRole.CANDIDATE)
            cmds = self.releases.on_result(
                view, written, result, p.sent_at, now, me=self.me, term=self.term, contending=contending
            )
            return cmds + self._refresh(now)
        rnd = self.round
        if rnd is None or seq != rnd.seq:
            return []
        rnd.pending.discard(p.tag)
        if written is None:
            self.regs.on_read(view, result, now, self.me, self.term)
        else:
            claim = written.term == self.term and self.role in (GlobalRole.CANDIDATE, GlobalRole.HOLDER)
            self.regs.on_write(view, written, result, p.sent_at, now, claim=claim)
        cmds = self._complete(now) if not rnd.pending else []
        return cmds + self._refresh(now)

    def valid_until(self, now: float) -> float | None:
        """End of our hold (local clock) if we hold at `now`, else None. Records nothing."""
        return self._valid_until(now)

    def answer(self, now: float) -> GlobalAnswer:
        """The answer to hand out. Records its end in `granted_until` (one max): no later
        tenure of ours starts, and no release write of ours is sent, before that end plus
        `drift_pad` (`yes_over_at`)."""
        until = self._valid_until(now)
        if until is not None:
            self.granted_until = max(self.granted_until, until)
            return GlobalAnswer(self.name, True, self.term, until - now, self.me, self.term, self.index)
        view = self.regs.majority_value()
        return GlobalAnswer(
            self.name,
            False,
            None,
            0.0,
            view.holder if view is not None else None,
            view.term if view is not None else None,
            self.index,
        )

    # --- rounds -----------------------------------------------------------------------

    def _start(self, now: float, *, acquire: bool) -> list[Command]:
        if acquire:
            self.role = GlobalRole.CANDIDATE
            self.term = self.regs.next_term()
            self.regs.drop_claims()
        self._seq += 1
        write_term = self.term if self.role in (GlobalRole.CANDIDATE, GlobalRole.HOLDER) else None
        rnd = Round(now, self._seq, now + self.spec.request_timeout + self._grace(), write_term)
        self.round = rnd
        self.next_round_at = now + self.spec.renew_interval
        cmds: list[Command] = []
        for v in self.views.values():
            if write_term is not None and self.regs.writable(v, self.me, write_term, now):
                cmd = self.regs.write(v, self.me, write_term, self._kind("round"), now, rnd.seq)
            else:
                cmd = self.regs.read(v.dc, self._kind("round"), now, rnd.seq)
            rnd.pending.add(cmd.tag)
            cmds.append(cmd)
        return cmds

    def _complete(self, now: float) -> list[Command]:
        rnd = self.round
        assert rnd is not None
        self.round = None
        cmds = self.inflight.cancel([self._kind("round")])
        if self.role is GlobalRole.CANDIDATE:
            if self._expiry_after(now):
                self.role = GlobalRole.HOLDER
                self.tenures += 1
            else:
                cmds += self._back_off(now)
        self._check_tenure(now)
        return cmds

    def _back_off(self, now: float) -> list[Command]:
        """A failed acquisition: free what we won (we never held: no "yes" was given)."""
        term = self.term
        won = self.regs.claimed()
        self._end_tenure()
        self.hold_off_until = now + self.spec.renew_interval * (1 + self.rank)
        assert term is not None
        return self.releases.send_now(won, term, now)

    # --- rules ------------------------------------------------------------------------

    def _acquire_time(self) -> float:
        """Earliest local time at which free registers weigh a majority (inf: not foreseeable)."""
        at = self.regs.free_majority_at(self.me)
        return max(at + self._stagger(), self.hold_off_until, self.yes_over_at)

    def _may_acquire(self, now: float) -> bool:
        return self._dc_ok(now) and self.me != "" and not self.releasing and now >= self._acquire_time()

    def _dc_ok(self, now: float) -> bool:
        return self.dc_until is not None and now < self.dc_until

    def _expiry_after(self, now: float) -> bool:
        end = self.regs.claims_end()
        return end is not None and end > now

    def _valid_until(self, now: float) -> float | None:
        if self.role is not GlobalRole.HOLDER or not self._dc_ok(now):
            return None
        end = self.regs.claims_end()
        assert self.dc_until is not None
        if end is None or now >= end:
            return None
        return min(end, self.dc_until)

    def _check_tenure(self, now: float) -> None:
        if self.role is GlobalRole.HOLDER and (not self._expiry_after(now) or not self._dc_ok(now)):
            self._end_tenure()

    def _end_tenure(self) -> None:
        if self.role in (GlobalRole.HOLDER, GlobalRole.CANDIDATE):
            self.role = GlobalRole.IDLE
        self.term = None
        self.regs.drop_claims()

    def _refresh(self, now: float) -> list[Command]:
        until = self._valid_until(now)
        key = (until is not None, self.term if until is not None else None)
        if key != self._key:
            self._key = key
            self.index += 1
        return []

    def _stagger(self) -> float:
        """Contenders that become eligible together start apart (by DC rank), so that one
        usually wins the race instead of all splitting the registers and backing off."""
        return self.rank * self.spec.renew_interval / 2

    def _grace(self) -> float:
        return max(0.0, (self.spec.renew_interval - self.spec.request_timeout) / 2)

    def _kind(self, what: str) -> str:
        """Request kinds: "global.<lock-name>.round|release" (the host routes on the name)."""
        return f"global.{self.name}.{what}"

