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

``members`` is the chosen clique: among maximal cliques containing ``d``, qualifying ones
first, then the largest weight, then the smallest sorted tuple of names (deterministic).

Cost: the clique search runs on the closed neighbourhood of ``d`` only (networkx
`find_cliques` restricted to cliques containing ``d``); a full mesh of 50 DCs is one
clique. Pure: no IO, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import networkx as nx

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


def _key(clique: tuple[str, ...], topology: Topology) -> tuple[bool, int, tuple[str, ...]]:
    return (not qualifies(clique, topology), -clique_weight(clique, topology), clique)


def candidate_cliques(matrix: Matrix, self_dc: str) -> list[tuple[str, ...]]:
    """Every maximal clique of the undirected up-graph that contains ``self_dc``, sorted."""
    neighbours = matrix.neighbours(self_dc)
    graph = nx.Graph()
    graph.add_node(self_dc)
    graph.add_nodes_from(sorted(neighbours))
    for a, b in matrix.links():
        if a in neighbours and b in neighbours:
            graph.add_edge(a, b)
    for b in neighbours:
        graph.add_edge(self_dc, b)
    return sorted(tuple(sorted(c)) for c in nx.find_cliques(graph, nodes=[self_dc]))


def decide(matrix: Matrix, topology: Topology, self_dc: str) -> QuorumDecision:
    """Apply the quorum rule for ``self_dc`` to ``matrix`` (see the module invariant)."""
    total = topology.total_weight
    threshold = total // 2 + 1
    if self_dc not in topology.names:
        return QuorumDecision(self_dc, False, (), 0, threshold, total, (), "not a configured DC")
    best = min(candidate_cliques(matrix, self_dc), key=lambda c: _key(c, topology))
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
    better = min(candidate_cliques(matrix, d.dc), key=lambda c: _key(c, topology))
    if better != d.best:
        return f"clique {better} ranks above the chosen {d.best}"
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
