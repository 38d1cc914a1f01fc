"""The quorum rule.

INVARIANT (what `decide` guarantees, `QuorumDecision.check_invariants` re-verifies):

    ``decide(m, topo, d).in_quorum`` iff some clique C of the undirected up-graph of
    ``m`` contains ``d`` and ``2 * weight(C) > topo.total_weight``, or
    ``2 * weight(C) == topo.total_weight`` and ``topo.tie_breaker in C``.

Weights are CONFIGURED weights (witness DCs included); the denominator is the configured
total, never the DCs currently visible. Consequence used by docs/safety.md: any two
qualifying cliques (computed from any matrices, at any times) share at least one DC,
because two disjoint sets cannot both hold more than half, and two exact halves both
contain the tie-breaker.

``members`` is the chosen clique: among cliques containing ``d``, qualifying ones first,
then the largest weight, then the smallest sorted tuple of names (deterministic). Weights
are positive (the config enforces it), so the chosen clique is maximal.

Cost: the search runs on the neighbourhood of ``d`` only, as a weighted branch and bound
over bitsets with a greedy-colouring bound (Tomita-style); see docs/safety.md for timings
at 50 DCs. Pure: no IO, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from coordinator.core.matrix import Matrix
from coordinator.core.rows import PeerTracker
from coordinator.core.timers import derive
from coordinator.core.topology import Timers, Topology


class QuorumInvariantError(AssertionError):
    """A decision does not follow from its matrix: a bug, never a runtime condition."""


def clique_weight(clique: Iterable[str], topology: Topology) -> int:
    return sum(topology.dc(name).weight for name in clique)


def qualifies(clique: Iterable[str], topology: Topology) -> bool:
    """Does this set of DCs (assumed a clique) hold a quorum by configured weight?"""
    names = set(clique)
    doubled = 2 * clique_weight(names, topology)
    total = topology.total_weight
    return doubled > total or (doubled == total and topology.tie_breaker in names)


@dataclass(frozen=True)
class QuorumDecision:
    dc: str
    in_quorum: bool
    members: tuple[str, ...]
    """Sorted DCs of the quorum clique; empty iff not in quorum."""
    weight: int
    """Weight of ``best`` (the chosen clique, quorum or not)."""
    threshold: int
    """Smallest weight that wins without the tie-breaker: total_weight // 2 + 1."""
    total_weight: int
    best: tuple[str, ...]
    """The chosen clique containing ``dc`` even when it is no quorum (for display)."""
    reason: str
    """Human explanation: which rule made (or did not make) the quorum."""

    def check_invariants(self, matrix: Matrix, topology: Topology) -> None:
        """Re-derive the decision from ``matrix``; raise `QuorumInvariantError` on mismatch."""
        fail = _violation(self, matrix, topology)
        if fail is not None:
            raise QuorumInvariantError(fail)


class _Graph:
    """The undirected up-graph restricted to the neighbourhood of one DC, as bitsets.

    Bit i stands for ``names[i]`` (sorted), so "smallest name" is "lowest bit".
    """

    def __init__(self, matrix: Matrix, topology: Topology, self_dc: str) -> None:
        self.names = tuple(sorted(matrix.neighbours(self_dc) & set(topology.names)))
        index = {name: i for i, name in enumerate(self.names)}
        self.weight = [topology.dc(name).weight for name in self.names]
        self.adj = [0] * len(self.names)
        directed = matrix.directed
        for a, b in directed:
            i, j = index.get(a), index.get(b)
            if i is not None and j is not None and (b, a) in directed:
                self.adj[i] |= 1 << j
        self.all = (1 << len(self.names)) - 1

    def bit(self, name: str) -> int:
        return 1 << self.names.index(name)

    def max_weight(self, cands: int, goal: int | None = None) -> int:
        """Weight of the heaviest clique inside ``cands``; may stop early once >= ``goal``.

        Branch and bound: greedy colouring gives each prefix of the candidates a bound
        (a clique holds at most one vertex per colour class).
        """
        whole = self._clique_weight(cands)
        if whole is not None:
            return whole
        best = self._greedy(cands)
        target = goal if goal is not None else sum(self.weight)

        def expand(p: int, current: int) -> None:
            nonlocal best
            whole = self._clique_weight(p)
            if whole is not None:
                best = max(best, current + whole)
                return
            order, bounds = self._colour(p)
            for i in range(len(order) - 1, -1, -1):
                if best >= target or current + bounds[i] <= best:
                    return
                v = order[i]
                w = current + self.weight[v]
                sub = p & self.adj[v]
                if sub:
                    expand(sub, w)
                elif w > best:
                    best = w
                p &= ~(1 << v)

        if cands and best < target:
            expand(cands, 0)
        return best

    def _greedy(self, p: int) -> int:
        """A quick lower bound: grow a clique taking the best-connected vertex first."""
        total = 0
        while p:
            v, score = -1, -1
            rest = p
            while rest:
                u = (rest & -rest).bit_length() - 1
                rest &= rest - 1
                degree = (p & self.adj[u]).bit_count()
                if degree > score:
                    v, score = u, degree
            total += self.weight[v]
            p &= self.adj[v]
        return total

    def _clique_weight(self, p: int) -> int | None:
        """The weight of ``p`` if its vertices are pairwise linked, else None."""
        total, rest = 0, p
        while rest:
            v = (rest & -rest).bit_length() - 1
            if p & ~self.adj[v] != 1 << v:
                return None
            total += self.weight[v]
            rest &= rest - 1
        return total

    def _colour(self, p: int) -> tuple[list[int], list[int]]:
        """Vertices of ``p`` ordered by colour class, and the cumulative bound at each."""
        order: list[int] = []
        bounds: list[int] = []
        total = 0
        rest = p
        while rest:
            free, heaviest = rest, 0
            while free:
                v = (free & -free).bit_length() - 1
                free &= ~(1 << v) & ~self.adj[v]
                rest &= ~(1 << v)
                order.append(v)
                heaviest = max(heaviest, self.weight[v])
                bounds.append(-1)
            total += heaviest
            for i in range(len(bounds) - 1, -1, -1):
                if bounds[i] != -1:
                    break
                bounds[i] = total
        return order, bounds

    def smallest(self, cands: int, need: int) -> tuple[str, ...]:
        """The clique of weight exactly ``need`` inside ``cands`` with the smallest sorted names.

        Requires one to exist. Among equal-weight cliques (positive weights) none contains
        another, so the smaller sorted tuple is the one holding the smallest name of the
        symmetric difference: take names greedily in sorted order while still feasible.
        """
        chosen: list[str] = []
        while need > 0:
            v = (cands & -cands).bit_length() - 1
            after = cands & self.adj[v] & ~((1 << (v + 1)) - 1)
            rest = need - self.weight[v]
            if rest == 0 or (rest > 0 and self.max_weight(after, rest) >= rest):
                chosen.append(self.names[v])
                cands, need = after, rest
            else:
                cands &= ~(1 << v)
        return tuple(chosen)


def _choose(matrix: Matrix, topology: Topology, self_dc: str) -> tuple[str, ...]:
    """The chosen clique containing ``self_dc``: qualifying first, heaviest, smallest names."""
    g = _Graph(matrix, topology, self_dc)
    own = topology.dc(self_dc).weight
    rest = g.max_weight(g.all)
    best = own + rest
    forced: tuple[str, ...] = (self_dc,)
    cands = g.all
    tie = topology.tie_breaker
    if 2 * best == topology.total_weight and tie is not None and tie != self_dc and tie in g.names:
        with_tie = g.adj[g.names.index(tie)]
        need = rest - topology.dc(tie).weight
        if need == 0 or g.max_weight(with_tie, need) >= need:
            forced, cands, rest = (self_dc, tie), with_tie, need
    return tuple(sorted(forced + g.smallest(cands, rest)))


def decide(matrix: Matrix, topology: Topology, self_dc: str) -> QuorumDecision:
    """Apply the quorum rule for ``self_dc`` to ``matrix`` (see the module invariant)."""
    total = topology.total_weight
    threshold = total // 2 + 1
    if self_dc not in topology.names:
        return QuorumDecision(self_dc, False, (), 0, threshold, total, (), "not a configured DC")
    best = _choose(matrix, topology, self_dc)
    weight = clique_weight(best, topology)
    ok = qualifies(best, topology)
    if not ok:
        reason = f"largest clique with {self_dc} weighs {weight} of {total}; needs {threshold}"
        if 2 * weight == total:
            reason += f" or exactly half with tie-breaker {topology.tie_breaker or '(none configured)'}"
    elif 2 * weight == total:
        reason = f"clique weighs exactly half ({weight} of {total}), holds tie-breaker {topology.tie_breaker}"
    else:
        reason = f"clique weighs {weight} of {total} (> half)"
    return QuorumDecision(self_dc, ok, best if ok else (), weight, threshold, total, best, reason)


def _violation(d: QuorumDecision, matrix: Matrix, topology: Topology) -> str | None:
    if d.total_weight != topology.total_weight or d.threshold != topology.total_weight // 2 + 1:
        return "total weight or threshold does not match the topology"
    if d.dc not in topology.names:
        return None if not d.in_quorum and not d.members else "unknown DC decided in quorum"
    if d.dc not in d.best or list(d.best) != sorted(set(d.best)):
        return f"best clique {d.best} must be sorted, unique and contain {d.dc}"
    for i, a in enumerate(d.best):
        for b in d.best[i + 1:]:
            if not matrix.link(a, b):
                return f"{a} - {b} is not an up link, yet both are in the chosen clique"
    if d.weight != clique_weight(d.best, topology):
        return "weight is not the configured weight of the chosen clique"
    if d.in_quorum != qualifies(d.best, topology):
        return "in_quorum does not match the quorum rule on the chosen clique"
    if d.members != (d.best if d.in_quorum else ()):
        return "members must be the chosen clique iff in quorum"
    g = _Graph(matrix, topology, d.dc)
    heaviest = topology.dc(d.dc).weight + g.max_weight(g.all)
    if heaviest != d.weight:
        return f"a clique with {d.dc} weighs {heaviest}, the chosen one {d.weight}"
    return None


def takeover_in(
    self_dc: str,
    topology: Topology,
    tracker: PeerTracker,
    members: Iterable[str],
    now: float,
    timers: Timers,
) -> dict[str, float]:
    """Seconds until the majority may take over each configured DC outside my quorum.

    ``members`` must be the quorum of a decision made on a matrix assembled at this same
    ``now``; without ``self_dc`` among them (not in quorum) nothing may be taken over and
    the answer is empty. For every DC m not in ``members``::

        takeover_in[m] = derive(timers).takeover_after - (now - tracker.takeover_evidence(m))

    A value <= 0 means m's writable period that could have held its last fencing token has
    ended (docs/safety.md, "Takeover"): act on it only at a round whose quorum decision
    was made at ``now``. Positive values are a countdown for display.
    """
    quorum = set(members)
    if self_dc not in quorum:
        return {}
    after = derive(timers).takeover_after
    return {
        m: after - (now - tracker.takeover_evidence(m))
        for m in sorted(topology.names)
        if m not in quorum
    }
