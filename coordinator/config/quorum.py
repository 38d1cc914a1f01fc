"""Quorum arithmetic over a topology, for explanations and warnings.

The rule is the core's (`coordinator.core.quorum.qualifies`, docs/safety.md): a set of DCs
that all reach each other has quorum when its weight is more than half of the CONFIGURED total
weight, or exactly half and it contains the tie_breaker DC. Only non-witness DCs in a
quorum side may be writable.
"""

from __future__ import annotations

from itertools import combinations

from coordinator.core.quorum import qualifies
from coordinator.core.topology import Topology

MAX_ENUMERATED_DCS = 12
"""Above this many DCs, minimal quorums are not enumerated (2^n subsets)."""


def threshold(topo: Topology) -> int:
    """Smallest weight that is a strict majority of the total."""
    return topo.total_weight // 2 + 1


def has_quorum(topo: Topology, names: tuple[str, ...] | frozenset[str]) -> bool:
    """The core's rule (coordinator.core.quorum.qualifies) for a set of mutually reachable DCs."""
    return qualifies(names, topo)


def half_split(topo: Topology) -> tuple[str, ...] | None:
    """A set of DCs with exactly half the total weight (containing the first DC), or None."""
    total = topo.total_weight
    if total % 2 or len(topo.datacenters) < 2:
        return None
    first, *rest = topo.datacenters
    target = total // 2 - first.weight
    reach: dict[int, tuple[str, ...]] = {0: (first.name,)}
    for dc in rest:
        for weight, names in list(reach.items()):
            nxt = weight + dc.weight
            if nxt <= target and nxt not in reach:
                reach[nxt] = (*names, dc.name)
    return reach.get(target)


def minimal_quorums(topo: Topology) -> list[tuple[str, ...]] | None:
    """Every smallest-by-inclusion DC set with quorum, in config order; None if too many DCs."""
    names = topo.names
    if len(names) > MAX_ENUMERATED_DCS:
        return None
    found: list[tuple[str, ...]] = []
    for size in range(1, len(names) + 1):
        for combo in combinations(names, size):
            if not has_quorum(topo, combo):
                continue
            if any(set(smaller) <= set(combo) for smaller in found):
                continue
            found.append(combo)
    return found
