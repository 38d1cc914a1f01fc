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

Invariants (checked by sim/world/global_invariants.py): at any instant at most one
claimant holds; terms of successive tenures strictly increase (the term is the fencing
token); no register of ours is freed before every "yes" we handed out has run out, so a
successor's first "yes" comes after our last one ends (docs/safety.md, "Global lock").
Pure: no clock, no IO, no randomness.
"""

from __future__ import annotations

import math
from typing import cast

from coordinator.consul import sansio as c
from coordinator.consul.errors import ConsulError, TxnRolledBack
from coordinator.core.global_register import (
    Register,
    check_spec,
    decode_register,
    encode_register,
    register_key,
)
from coordinator.core.global_state import RegView, majority_end, majority_value
from coordinator.core.global_types import GlobalAnswer, GlobalRole, Round
from coordinator.core.plumbing import Inflight, Pending, Result, unwrap
from coordinator.core.protocol import Command, SendRequest
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
        self.total = topology.total_weight
        self.inflight = inflight
        self.views = {d.name: RegView(d.name, d.weight) for d in topology.datacenters}
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
        self._wseq = 0
        self.tenures = 0
        self.index = 1
        """Never 0 (like X-Consul-Index), so a long-poll on it always blocks."""
        self._key: tuple[bool, int | None] = (False, None)
        self._releasing: dict[str, tuple[int, int]] = {}
        """DC -> (term being released, release CAS attempts left) while a release is open."""
        self._deferred: dict[str, int] = {}
        """DC -> term of a release write waiting for `yes_over_at` (sent by `on_timer`)."""
        self._release_at = math.inf
        """When the deferred release writes go out (`yes_over_at` when released)."""

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
        for v in self.views.values():
            v.claim_from = None
        cmds = self.inflight.cancel([self._kind("round"), self._kind("release")])
        self._releasing.clear()
        self._deferred.clear()
        self._release_at = math.inf
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
        return bool(self._deferred) or self.inflight.has(self._kind("release"))

    def _release_writes(self, now: float) -> list[Command]:
        """End the tenure, then CAS ``holder=""`` (same term) onto every register we claim:
        now if no "yes" of ours still runs, else at `yes_over_at` (`_send_deferred`)."""
        term = self.term
        mine = [v for v in self.views.values() if v.claim_from is not None and v.index]
        self._end_tenure()
        if term is None:
            return []
        if now < self.yes_over_at:
            self._deferred.update((v.dc, term) for v in mine)
            self._release_at = self.yes_over_at
            return []
        for v in mine:
            self._releasing[v.dc] = (term, 2)
        return [self._send_release(v, term, now) for v in mine]

    @property
    def yes_over_at(self) -> float:
        """When no client may still act on a "yes" of ours (-inf: none was handed out)."""
        return self.granted_until + self.drift_pad

    def _send_deferred(self, now: float) -> list[Command]:
        """The last "yes" ran out: send the deferred release writes. A register read since
        then that no longer names us with that term is skipped; one whose index became
        unknown is re-read first (`_on_release` then CASes it if still ours)."""
        deferred, self._deferred = self._deferred, {}
        self._release_at = math.inf
        cmds: list[Command] = []
        for dc, term in deferred.items():
            v = self.views[dc]
            self._releasing[dc] = (term, 2)
            if v.index is None:
                req = c.kv_get(self.key, dc=dc, consistency="consistent", timeout=self.spec.request_timeout)
                cmds.append(self.inflight.send(self._kind("release"), req, now, (0, dc, None)))
            elif v.index and v.value is not None and v.value.holder == self.me and v.value.term == term:
                cmds.append(self._send_release(v, term, now))
            else:
                self._releasing.pop(dc, None)
        return cmds

    def _send_release(self, v: RegView, term: int, now: float) -> SendRequest:
        left = self._releasing.get(v.dc, (term, 1))[1]
        self._releasing[v.dc] = (term, left - 1)
        return self._send_write(v, Register("", term, self._next_wseq()), now, "release")

    def _on_release(
        self, v: RegView, written: Register | None, result: Result, p: Pending, now: float
    ) -> list[Command]:
        """A release write or its re-read came back: retry once if the register is still ours."""
        if written is not None:
            if self._on_write(v, written, result, p.sent_at, now, claim=False):
                self._releasing.pop(v.dc, None)
                return []
        else:
            self._on_read(v, result, now)
        pending = self._releasing.get(v.dc)
        if pending is None or self.role in (GlobalRole.HOLDER, GlobalRole.CANDIDATE):
            self._releasing.pop(v.dc, None)
            return []
        term, left = pending
        if written is not None and left > 0:
            req = c.kv_get(self.key, dc=v.dc, consistency="consistent", timeout=self.spec.request_timeout)
            return [self.inflight.send(self._kind("release"), req, now, (0, v.dc, None))]
        ours = v.value is not None and v.value.holder == self.me and v.value.term == term
        if written is None and ours and v.index and left > 0:
            return [self._send_release(v, term, now)]
        self._releasing.pop(v.dc, None)
        return []

    def on_timer(self, now: float) -> list[Command]:
        cmds: list[Command] = self._send_deferred(now) if self._deferred and now >= self._release_at else []
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
        release = self._release_at if self._deferred else math.inf
        if self.role is GlobalRole.INACTIVE:
            return release if math.isfinite(release) else None
        times = [release, self.round.deadline if self.round is not None else self.next_round_at]
        if self.role is GlobalRole.HOLDER:
            end = self._expiry()
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
        data = cast(tuple[int, str, Register | None], p.data)
        seq, dc, written = data
        view = self.views[dc]
        if p.kind == self._kind("release"):
            return self._on_release(view, written, result, p, now) + self._refresh(now)
        rnd = self.round
        if rnd is None or seq != rnd.seq:
            return []
        rnd.pending.discard(p.tag)
        if written is None:
            self._on_read(view, result, now)
        else:
            self._on_write(view, written, result, p.sent_at, now, claim=written.term == self.term)
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
        view = majority_value(self.views.values(), self.total)
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
            self.term = 1 + max(v.term for v in self.views.values())
            for v in self.views.values():
                v.claim_from = None
        self._seq += 1
        write_term = self.term if self.role in (GlobalRole.CANDIDATE, GlobalRole.HOLDER) else None
        rnd = Round(now, self._seq, now + self.spec.request_timeout + self._grace(), write_term)
        self.round = rnd
        self.next_round_at = now + self.spec.renew_interval
        cmds: list[Command] = []
        for v in self.views.values():
            if write_term is not None and self._writable(v, write_term, now):
                value = Register(self.me, write_term, self._next_wseq())
                cmd = self._send_write(v, value, now, "round", rnd.seq)
            else:
                req = c.kv_get(self.key, dc=v.dc, consistency="consistent", timeout=self.spec.request_timeout)
                cmd = self.inflight.send(self._kind("round"), req, now, (rnd.seq, v.dc, None))
            rnd.pending.add(cmd.tag)
            cmds.append(cmd)
        return cmds

    def _send_write(self, v: RegView, value: Register, now: float, what: str, seq: int = 0) -> SendRequest:
        assert v.index is not None
        op = c.TxnOp.cas(self.key, encode_register(value), v.index)
        req = c.txn([op], dc=v.dc, timeout=self.spec.request_timeout)
        return self.inflight.send(self._kind(what), req, now, (seq, v.dc, value))

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
        won = [v for v in self.views.values() if v.claim_from is not None and v.index]
        self._end_tenure()
        self.hold_off_until = now + self.spec.renew_interval * (1 + self.rank)
        assert term is not None
        for v in won:
            self._releasing[v.dc] = (term, 2)
        return [self._send_release(v, term, now) for v in won]

    # --- results ----------------------------------------------------------------------

    def _on_read(self, v: RegView, result: Result, now: float) -> None:
        try:
            read = unwrap(result, c.parse_kv_get)
        except ConsulError:
            return
        entry = read.entry
        if entry is None:
            v.observe(0, None, now)
        else:
            v.observe(entry.modify_index, decode_register(entry.value), now)
        ours = v.value is not None and v.value.holder == self.me and v.value.term == self.term
        if v.claim_from is not None and not ours:
            v.claim_from = None

    def _on_write(
        self, v: RegView, written: Register | None, result: Result, sent_at: float, now: float, *, claim: bool
    ) -> bool:
        """Record a CAS write's result; True iff Consul applied it."""
        try:
            res = unwrap(result, c.parse_txn)
        except TxnRolledBack:
            v.forget_index()
            v.claim_from = None
            return False
        except ConsulError:
            v.forget_index()
            return False
        if not res.results:
            v.forget_index()
            return False
        index = res.results[0].modify_index
        v.observe(index, written, now)
        if claim and written is not None and self.role in (GlobalRole.CANDIDATE, GlobalRole.HOLDER):
            v.claim_from = sent_at
            v.claim_index = index
        return True

    # --- rules ------------------------------------------------------------------------

    def _writable(self, v: RegView, term: int, now: float) -> bool:
        if v.index is None:
            return False
        if v.value is not None and v.value.holder == self.me and v.value.term == term:
            return True
        free_at = v.free_at(self.me, self.spec.lease, self.spec.margin)
        return free_at is not None and now >= free_at and v.term < term

    def _acquire_time(self) -> float:
        """Earliest local time at which free registers weigh a majority (inf: not foreseeable)."""
        lease, margin = self.spec.lease, self.spec.margin
        frees = [(v.free_at(self.me, lease, margin), v.weight) for v in self.views.values()]
        known = [(t, w) for t, w in frees if t is not None]
        acc = 0
        for t, w in sorted(known, key=lambda x: x[0]):
            acc += w
            if 2 * acc > self.total:
                return max(t + self._stagger(), self.hold_off_until, self.yes_over_at)
        return math.inf

    def _may_acquire(self, now: float) -> bool:
        return self._dc_ok(now) and self.me != "" and not self.releasing and now >= self._acquire_time()

    def _dc_ok(self, now: float) -> bool:
        return self.dc_until is not None and now < self.dc_until

    def _expiry(self) -> float | None:
        ends = [(v.claim_end(self.spec.lease), v.weight) for v in self.views.values()]
        claims = [(end, w) for end, w in ends if end is not None]
        return majority_end(claims, self.total)

    def _expiry_after(self, now: float) -> bool:
        end = self._expiry()
        return end is not None and end > now

    def _valid_until(self, now: float) -> float | None:
        if self.role is not GlobalRole.HOLDER or not self._dc_ok(now):
            return None
        end = self._expiry()
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
        for v in self.views.values():
            v.claim_from = None

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

    def _next_wseq(self) -> int:
        self._wseq += 1
        return self._wseq
