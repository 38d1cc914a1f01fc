"""Ground-truth quorum: which DCs COULD legitimately be in a quorum, given the real network.

The rule is docs/safety.md's (also coordinator.config.quorum): a set of DCs that can all
reach each other (every pair linked BOTH ways) has quorum when its weight is more than half
of the configured total, or exactly half and it contains the tie_breaker. Quorum is
monotone in the set, so it is enough to look at the maximal cliques of the "linked both
ways" graph. Pure; no clock.
"""

from __future__ import annotations

from collections.abc import Iterable

import networkx as nx

from coordinator.config.quorum import has_quorum
from coordinator.core.topology import Topology


def quorum_members(
    topo: Topology,
    down_links: Iterable[tuple[str, str]],
    alive: Iterable[str] | None = None,
) -> frozenset[str]:
    """The DCs that belong to at least one quorum clique.

    `down_links` are DIRECTED links that do not work; a pair is connected only if neither
    direction is down. `alive` (default: every DC) restricts the DCs that may vote at all.
    """
    out: set[str] = set()
    for clique in quorum_cliques(topo, down_links, alive):
        out.update(clique)
    return frozenset(out)


def quorum_cliques(
    topo: Topology,
    down_links: Iterable[tuple[str, str]],
    alive: Iterable[str] | None = None,
) -> list[frozenset[str]]:
    """Every maximal clique that holds a quorum (same arguments as `quorum_members`), sorted."""
    names = topo.names
    members = set(names) if alive is None else set(alive) & set(names)
    down = set(down_links)
    graph = nx.Graph()
    graph.add_nodes_from(sorted(members))
    ordered = sorted(members)
    for i, a in enumerate(ordered):
        for b in ordered[i + 1:]:
            if (a, b) not in down and (b, a) not in down:
                graph.add_edge(a, b)
    found = [frozenset(c) for c in nx.find_cliques(graph) if has_quorum(topo, frozenset(c))]
    return sorted(found, key=sorted)
