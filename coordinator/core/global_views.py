"""`RegisterViews`: every DC's register of one global lock, as one claimant sees it.

The register bookkeeping of a `GlobalLock` (globallock.py), apart from its holder state
machine: it builds the requests that read (``?consistent``) or CAS-write (txn ``cas`` on
the ModifyIndex we know, through ``?dc=``) one DC's register, records their results in
that DC's `RegView` (global_state.py: `seen_at` only moves later, `claim_from` is the SEND
time of an acknowledged write of our tenure and is dropped, never moved, when the register
changed under us), and answers the majority questions the state machine asks: when do
free registers weigh a strict majority, until when do our claims, which term to pick.

It knows nothing of roles: the caller says whether a write is a claim and passes its own
identity (`me`) and term. Pure: no clock, no IO.
"""

from __future__ import annotations

import math

from coordinator.consul import sansio as c
from coordinator.consul.errors import ConsulError, TxnRolledBack
from coordinator.core.global_register import Register, decode_register, encode_register
from coordinator.core.global_state import RegView, majority_end, majority_value
from coordinator.core.plumbing import Inflight, Result, unwrap
from coordinator.core.protocol import SendRequest
from coordinator.core.topology import GlobalLockSpec, Topology

Sent = tuple[int, str, Register | None]
"""A request's data: (round seq or 0, DC, the value written or None for a read)."""


class RegisterViews:
    """The views of one lock's registers (one per DC) and the requests that refresh them."""

    def __init__(self, *, key: str, spec: GlobalLockSpec, topology: Topology, inflight: Inflight) -> None:
        self.key = key
        self.spec = spec
        self.inflight = inflight
        self.total = topology.total_weight
        self.views = {d.name: RegView(d.name, d.weight) for d in topology.datacenters}
        self._wseq = 0

    # --- requests ---------------------------------------------------------------------

    def read(self, dc: str, kind: str, now: float, seq: int = 0) -> SendRequest:
        """A ``?consistent`` read of `dc`'s register."""
        req = c.kv_get(self.key, dc=dc, consistency="consistent", timeout=self.spec.request_timeout)
        return self.inflight.send(kind, req, now, (seq, dc, None))

    def write(self, v: RegView, holder: str, term: int, kind: str, now: float, seq: int = 0) -> SendRequest:
        """A CAS of ``{holder, term, next seq}`` onto `v` at the ModifyIndex we know (which must be known)."""
        assert v.index is not None
        self._wseq += 1
        value = Register(holder, term, self._wseq)
        op = c.TxnOp.cas(self.key, encode_register(value), v.index)
        req = c.txn([op], dc=v.dc, timeout=self.spec.request_timeout)
        return self.inflight.send(kind, req, now, (seq, v.dc, value))

    # --- results ----------------------------------------------------------------------

    def on_read(self, v: RegView, result: Result, now: float, me: str, term: int | None) -> None:
        """A read came back at `now`: observe it; a claim on a register no longer (me, term) is dropped."""
        try:
            read = unwrap(result, c.parse_kv_get)
        except ConsulError:
            return
        entry = read.entry
        if entry is None:
            v.observe(0, None, now)
        else:
            v.observe(entry.modify_index, decode_register(entry.value), now)
        ours = v.value is not None and v.value.holder == me and v.value.term == term
        if v.claim_from is not None and not ours:
            v.claim_from = None

    def on_write(
        self, v: RegView, written: Register | None, result: Result, sent_at: float, now: float, *, claim: bool
    ) -> bool:
        """Record a CAS write's result; True iff Consul applied it. An applied write with
        `claim` starts (or renews) our claim from its send time; a rolled-back CAS drops the
        claim; any unknown outcome forgets the index (the next round reads first)."""
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
        if claim and written is not None:
            v.claim_from = sent_at
            v.claim_index = index
        return True

    # --- rules ------------------------------------------------------------------------

    def writable(self, v: RegView, me: str, term: int, now: float) -> bool:
        """May `me` write `term` onto `v` now: it is ours with that term, or free for us
        (global_state.RegView.free_at) and its term is lower."""
        if v.index is None:
            return False
        if v.value is not None and v.value.holder == me and v.value.term == term:
            return True
        free_at = v.free_at(me, self.spec.lease, self.spec.margin)
        return free_at is not None and now >= free_at and v.term < term

    def free_majority_at(self, me: str) -> float:
        """Earliest local time at which registers free for `me` weigh a strict majority
        (inf: not foreseeable with what we know)."""
        lease, margin = self.spec.lease, self.spec.margin
        frees = [(v.free_at(me, lease, margin), v.weight) for v in self.views.values()]
        known = [(t, w) for t, w in frees if t is not None]
        acc = 0
        for t, w in sorted(known, key=lambda x: x[0]):
            acc += w
            if 2 * acc > self.total:
                return t
        return math.inf

    def claims_end(self) -> float | None:
        """Until when our claims weigh a strict majority (None: they never do)."""
        ends = [(v.claim_end(self.spec.lease), v.weight) for v in self.views.values()]
        return majority_end([(end, w) for end, w in ends if end is not None], self.total)

    def claimed(self) -> list[RegView]:
        """Registers we claim (an acknowledged write of the current tenure, index known)."""
        return [v for v in self.views.values() if v.claim_from is not None and v.index]

    def drop_claims(self) -> None:
        for v in self.views.values():
            v.claim_from = None

    def next_term(self) -> int:
        """The term a new tenure picks: 1 + the highest term of every register we know."""
        return 1 + max(v.term for v in self.views.values())

    def majority_value(self) -> Register | None:
        """The (holder, term) written in a strict weighted majority (display; may be stale)."""
        return majority_value(self.views.values(), self.total)
