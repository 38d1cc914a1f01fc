"""Probe rounds (DC leader only): publish our row, read every peer's, decide quorum.

A round starts at t0 (= send time of all its requests) and sends, all at t0:

* one local txn [check-session(leader key, our session), set(our row key, our row),
  get-tree(admin-fence key)]: it publishes the row AND proves that we held the leader
  lock at some moment >= t0, and reads the DC-wide admin fence in the same snapshot;
* one `GET <peer row key>?dc=<peer>&consistent` per peer DC, timeout `probe_timeout`.

It completes when every request has answered or at `t0 + probe_timeout + grace` (the
core's own deadline, in case the shell reports late; stragglers are cancelled and count
as failures). Then the tracker gets every read (send time t0), the matrix is assembled,
quorum decided, and a `RoundOutcome` is left for the replica:

* `confirmed` iff the txn was applied AND decide() says in quorum; the lease then runs
  until t0 + lease (never from the receive time);
* `leadership_lost` iff the txn was rolled back on the check-session op;
* `admin_fence` iff the applied txn found the admin-fence key (meaningful only with
  `txn_ok`; the fence takes effect before this round's confirmation is used);
* `local_error` is the ConsulError of the txn when local Consul failed.

Cross-DC read failures only mark that peer unobserved. Rounds start every
`probe_interval` from the previous t0; they never overlap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import cast

from coordinator.consul import sansio as c
from coordinator.consul.errors import ConsulError, TxnRolledBack
from coordinator.core.matrix import Matrix, assemble
from coordinator.core.plumbing import Inflight, Keys, LocalHealth, Pending, Result, unwrap
from coordinator.core.protocol import Command
from coordinator.core.quorum import QuorumDecision, decide
from coordinator.core.rows import PeerTracker, Row, RowError, decode_row, encode_row
from coordinator.core.topology import Topology


@dataclass(frozen=True)
class RoundOutcome:
    t0: float
    seq: int
    txn_ok: bool
    leadership_lost: bool
    local_error: ConsulError | None
    decision: QuorumDecision
    matrix: Matrix
    admin_fence: bool = False

    @property
    def confirmed(self) -> bool:
        return self.txn_ok and self.decision.in_quorum


@dataclass
class _Round:
    t0: float
    seq: int
    deadline: float
    txn_done: bool = False
    txn_ok: bool = False
    admin_fence: bool = False
    leadership_lost: bool = False
    local_error: ConsulError | None = None


class Prober:
    """Runs the rounds of one leadership term (create a new one per term: the tracker is per term)."""

    def __init__(
        self,
        *,
        topology: Topology,
        keys: Keys,
        term: str,
        started_at: float,
        inflight: Inflight,
        health: LocalHealth,
        first_seq: int = 1,
    ) -> None:
        """`first_seq`: continue the replica's row sequence across terms (rows never repeat)."""
        self.topology = topology
        self.timers = topology.timers
        self.keys = keys
        self.term = term
        """The `leader` field of our rows: "<replica-id>/<session-id>"."""
        self.inflight = inflight
        self.health = health
        self.peers = tuple(n for n in topology.names if n != keys.dc)
        self.tracker = PeerTracker(keys.dc, started_at, self.timers)
        self.seq = first_seq - 1
        self.round: _Round | None = None
        self.next_round_at = started_at
        self.outcomes: list[RoundOutcome] = []
        self.last: RoundOutcome | None = None

    def grace(self) -> float:
        return max(0.0, (self.timers.probe_interval - self.timers.probe_timeout) / 2)

    def next_deadline(self) -> float | None:
        if self.round is not None:
            return self.round.deadline
        return self.next_round_at

    def on_timer(self, now: float, session_id: str, state: str) -> list[Command]:
        if self.round is not None:
            if now >= self.round.deadline:
                return self._complete(now)
            return []
        if now < self.next_round_at:
            return []
        return self._start(now, session_id, state)

    def _start(self, now: float, session_id: str, state: str) -> list[Command]:
        self.seq += 1
        t0 = now
        self.round = _Round(t0, self.seq, t0 + self.timers.probe_timeout + self.grace())
        self.next_round_at = t0 + self.timers.probe_interval
        row = Row(dc=self.keys.dc, leader=self.term, seq=self.seq, reach=self.tracker.reach(t0), state=state)
        ops = [
            c.TxnOp.check_session(self.keys.leader, session_id),
            c.TxnOp.set(self.keys.row(), encode_row(row)),
            c.TxnOp.get_tree(self.keys.admin_fence),
        ]
        out: list[Command] = [
            self.inflight.send("round.txn", c.txn(ops, timeout=self.timers.probe_timeout), t0, self.seq)
        ]
        for peer in self.peers:
            req = c.kv_get(
                self.keys.row(peer), dc=peer, consistency="consistent", timeout=self.timers.probe_timeout
            )
            out.append(self.inflight.send("round.peer", req, t0, (self.seq, peer)))
        return out

    def handle(self, p: Pending, result: Result, now: float) -> list[Command]:
        rnd = self.round
        if rnd is None:
            return []
        if p.kind == "round.txn":
            if p.data != rnd.seq:
                return []
            rnd.txn_done = True
            try:
                applied = unwrap(result, c.parse_txn)
                self.health.success(p.kind)
                rnd.txn_ok = True
                fence_key = self.keys.admin_fence
                rnd.admin_fence = any(e.key == fence_key for e in applied.results)
            except TxnRolledBack as exc:
                rnd.leadership_lost = any(op == 0 for op, _ in exc.errors)
                if not rnd.leadership_lost:
                    rnd.local_error = exc
            except ConsulError as exc:
                self.health.failure(exc, p.kind)
                rnd.local_error = exc
        else:
            seq, peer = cast(tuple[int, str], p.data)
            if seq != rnd.seq:
                return []
            self._observe(peer, p.sent_at, result)
        if not self.inflight.has("round.txn") and not self.inflight.has("round.peer"):
            return self._complete(now)
        return []

    def _observe(self, peer: str, sent_at: float, result: Result) -> None:
        try:
            entry = unwrap(result, c.parse_kv_get).entry
            if entry is None or entry.value is None:
                self.tracker.observe_failure(peer, sent_at)
                return
            self.tracker.observe_row(peer, decode_row(entry.value), sent_at)
        except (ConsulError, RowError):
            self.tracker.observe_failure(peer, sent_at)

    def _complete(self, now: float) -> list[Command]:
        rnd = self.round
        assert rnd is not None
        self.round = None
        cancels = self.inflight.cancel(["round"])
        matrix = assemble(self.keys.dc, self.topology, self.tracker, self.tracker.rows(), now, self.timers)
        decision = decide(matrix, self.topology, self.keys.dc)
        outcome = RoundOutcome(
            t0=rnd.t0,
            seq=rnd.seq,
            txn_ok=rnd.txn_ok,
            leadership_lost=rnd.leadership_lost,
            local_error=rnd.local_error,
            decision=decision,
            matrix=matrix,
            admin_fence=rnd.admin_fence,
        )
        self.outcomes.append(outcome)
        self.last = outcome
        return cancels

    def abort(self) -> list[Command]:
        """Drop the round in flight (no outcome) and stop scheduling."""
        self.round = None
        self.next_round_at = math.inf
        return self.inflight.cancel(["round"])

    def take_outcomes(self) -> list[RoundOutcome]:
        out, self.outcomes = self.outcomes, []
        return out
