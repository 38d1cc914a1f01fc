"""The reachability matrix one replica assembles from its own observations and peers' rows.

Directed ``up(a, b)``: "a has fresh evidence that b is alive", as far as I can tell:

* ``a`` is me: ``tracker.fresh(b, now)``;
* ``a`` is a peer whose row is fresh for me (``tracker.fresh(a, now)``) and names ``a``:
  ``row.reach[b].ok and row.reach[b].age <= row_fresh``;
* anything else (a stale or missing row, a DC missing from ``reach``, a DC not in the
  topology) is down. Unknown is down.

``up(a, a)`` is always true. An undirected link ``a - b`` is up iff ``up(a, b)`` AND
``up(b, a)``; only links count for the quorum (a one-way cut breaks the link).

Pure: ``now`` is my monotonic clock; no IO.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from coordinator.core.rows import PeerTracker, Row
from coordinator.core.topology import Timers, Topology


@dataclass(frozen=True)
class Matrix:
    """An immutable directed reachability view over the configured DCs.

    Invariant: every pair in ``directed`` names two distinct DCs of ``dcs``.
    """

    dcs: tuple[str, ...]
    """Every configured DC, sorted."""
    directed: frozenset[tuple[str, str]]
    """``(a, b)`` present iff up(a, b), for a != b."""

    def up(self, a: str, b: str) -> bool:
        """Directed: a has fresh evidence of b (always true for a == b)."""
        return a == b or (a, b) in self.directed

    def link(self, a: str, b: str) -> bool:
        """Undirected: up both ways."""
        return self.up(a, b) and self.up(b, a)

    def links(self) -> Iterator[tuple[str, str]]:
        """Every undirected up link once, as (a, b) with a < b, in sorted order."""
        for a, b in sorted(self.directed):
            if a < b and (b, a) in self.directed:
                yield a, b

    def one_way(self) -> list[tuple[str, str]]:
        """Every (a, b) with up(a, b) but not up(b, a): one-way cuts, for display."""
        return sorted((a, b) for a, b in self.directed if (b, a) not in self.directed)

    def neighbours(self, dc: str) -> frozenset[str]:
        """DCs with an undirected up link to ``dc`` (excluding ``dc``)."""
        return frozenset(b for a, b in self.directed if a == dc and (b, a) in self.directed)

    def as_dict(self) -> dict[str, dict[str, bool]]:
        """``{a: {b: up(a, b)}}`` for every ordered pair a != b (for /v1/status)."""
        return {a: {b: self.up(a, b) for b in self.dcs if b != a} for a in self.dcs}


def from_links(dcs: tuple[str, ...] | list[str], directed: set[tuple[str, str]]) -> Matrix:
    """Build a Matrix from explicit directed pairs (tests, simulator); drops self-pairs."""
    names = tuple(sorted(dcs))
    known = set(names)
    pairs = frozenset((a, b) for a, b in directed if a != b and a in known and b in known)
    return Matrix(dcs=names, directed=pairs)


def _peer_reach(row: Row, dcs: tuple[str, ...], row_fresh: float) -> Iterator[str]:
    for b in dcs:
        entry = row.reach.get(b)
        if b != row.dc and entry is not None and entry.ok and entry.age <= row_fresh:
            yield b


def assemble(
    self_dc: str,
    topology: Topology,
    tracker: PeerTracker,
    rows: Mapping[str, Row],
    now: float,
    timers: Timers,
) -> Matrix:
    """The matrix as seen by ``self_dc`` at ``now``.

    ``rows`` is the latest row held per peer (normally ``tracker.rows()``); a row counts
    only if the tracker says its DC is fresh at ``now`` and the row names that DC.
    """
    dcs = tuple(sorted(topology.names))
    directed: set[tuple[str, str]] = set()
    for b in dcs:
        if b != self_dc and tracker.fresh(b, now):
            directed.add((self_dc, b))
    for a in dcs:
        if a == self_dc:
            continue
        row = rows.get(a)
        if row is None or row.dc != a or not tracker.fresh(a, now):
            continue
        for b in _peer_reach(row, dcs, timers.row_fresh):
            directed.add((a, b))
    return Matrix(dcs=dcs, directed=frozenset(directed))
