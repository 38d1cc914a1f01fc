"""Matrix assembly: my own freshness, peers' rows, unknown = down, directed vs undirected."""

from __future__ import annotations

from coordinator.core.matrix import assemble, from_links
from coordinator.core.rows import PeerTracker, ReachEntry, Row
from coordinator.core.topology import DcSpec, Timers, Topology

TIMERS = Timers(probe_interval=0.5, probe_timeout=0.4, row_fresh=1.5, max_drift=0.0)
TOPO = Topology("c", tuple(DcSpec(n) for n in ("a", "b", "c", "d")), timers=TIMERS)


def row(dc: str, seq: int, reach: dict[str, ReachEntry]) -> Row:
    return Row(dc=dc, leader=f"{dc}-1", seq=seq, reach=reach, state="writable")


def feed(t: PeerTracker, dc: str, reach: dict[str, ReachEntry], at: float = 10.0) -> None:
    """Two reads with a change: evidence of `dc` at `at`."""
    t.observe_row(dc, row(dc, 1, reach), sent_at=at)
    t.observe_row(dc, row(dc, 2, reach), sent_at=at + 0.5)


def test_directed_rules() -> None:
    t = PeerTracker("a", 0.0, TIMERS)
    feed(t, "b", {"a": ReachEntry(True, 0.4), "c": ReachEntry(True, 1.5), "d": ReachEntry(True, 1.6)})
    feed(t, "c", {"a": ReachEntry(False, 0.1), "b": ReachEntry(True, 0.1)})
    m = assemble("a", TOPO, t, t.rows(), 11.0, TIMERS)
    assert m.up("a", "b") and m.up("a", "c") and not m.up("a", "d")
    assert m.up("b", "a") and m.up("b", "c")
    assert not m.up("b", "d")  # age above row_fresh
    assert not m.up("c", "a")  # ok=False
    assert m.up("c", "b")
    assert not m.up("d", "a")  # no row at all
    assert m.up("d", "d")
    assert m.link("a", "b") and m.link("b", "c") and not m.link("a", "c")
    assert ("a", "c") in m.one_way()
    assert m.neighbours("a") == frozenset({"b"})
    assert m.as_dict()["c"] == {"a": False, "b": True, "d": False}


def test_a_stale_peer_row_counts_for_nothing() -> None:
    t = PeerTracker("a", 0.0, TIMERS)
    feed(t, "b", {"a": ReachEntry(True, 0.1), "c": ReachEntry(True, 0.1)}, at=10.0)
    assert assemble("a", TOPO, t, t.rows(), 11.5, TIMERS).up("b", "c")
    m = assemble("a", TOPO, t, t.rows(), 11.51, TIMERS)
    assert m.directed == frozenset()


def test_rows_for_unknown_or_mismatched_dcs_are_ignored() -> None:
    t = PeerTracker("a", 0.0, TIMERS)
    feed(t, "b", {"a": ReachEntry(True, 0.1), "zz": ReachEntry(True, 0.1)})
    forged = {"b": row("c", 9, {"a": ReachEntry(True, 0.0)})}
    assert assemble("a", TOPO, t, forged, 11.0, TIMERS).directed == frozenset({("a", "b")})
    m = assemble("a", TOPO, t, t.rows(), 11.0, TIMERS)
    assert m.directed == frozenset({("a", "b"), ("b", "a")})
    assert list(m.links()) == [("a", "b")]


def test_from_links_drops_self_pairs_and_unknown_names() -> None:
    m = from_links(["b", "a"], {("a", "a"), ("a", "b"), ("a", "x")})
    assert m.dcs == ("a", "b") and m.directed == frozenset({("a", "b")})
