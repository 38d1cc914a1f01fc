"""The quorum rule against a brute-force oracle, plus the majority-intersection property."""

from __future__ import annotations

from itertools import combinations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coordinator.core.matrix import Matrix, from_links
from coordinator.core.quorum import QuorumDecision, QuorumInvariantError, decide, qualifies
from coordinator.core.topology import DcSpec, Topology


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Topology, Matrix]:
    n = draw(st.integers(min_value=2, max_value=9))
    dcs = [f"dc{i}" for i in range(n)]
    specs = tuple(
        DcSpec(name, weight=draw(st.integers(min_value=1, max_value=4)), witness=draw(st.booleans()))
        for name in dcs
    )
    tie = draw(st.none() | st.sampled_from(dcs))
    pairs = [(a, b) for a in dcs for b in dcs if a != b]
    density = draw(st.floats(min_value=0.0, max_value=1.0))
    directed = {p for p in pairs if draw(st.floats(0.0, 1.0)) < density}
    return Topology(cluster="c", datacenters=specs, tie_breaker=tie), from_links(dcs, directed)


def oracle(matrix: Matrix, topo: Topology, me: str) -> tuple[bool, tuple[str, ...]]:
    """Enumerate every subset: in quorum iff some clique with `me` qualifies; pick like `decide`."""
    names = sorted(topo.names)
    cliques = [
        tuple(sorted(s)) for r in range(1, len(names) + 1) for s in combinations(names, r)
        if me in s and all(matrix.link(a, b) for a, b in combinations(s, 2))
    ]
    maximal = [c for c in cliques if not any(set(c) < set(d) for d in cliques)]
    any_quorum = any(qualifies(c, topo) for c in cliques)

    def key(c: tuple[str, ...]) -> tuple[bool, int, tuple[str, ...]]:
        return (not qualifies(c, topo), -sum(topo.dc(x).weight for x in c), c)

    return any_quorum, min(maximal, key=key)


@given(scenarios(), st.data())
def test_decide_matches_the_brute_force_oracle(
    scenario: tuple[Topology, Matrix], data: st.DataObject
) -> None:
    topo, matrix = scenario
    me = data.draw(st.sampled_from(topo.names))
    d = decide(matrix, topo, me)
    in_quorum, best = oracle(matrix, topo, me)
    assert d.in_quorum == in_quorum
    assert d.best == best
    assert d.members == (best if in_quorum else ())
    assert d.weight == sum(topo.dc(x).weight for x in best)
    d.check_invariants(matrix, topo)


@given(scenarios(), scenarios())
def test_any_two_quorums_intersect(one: tuple[Topology, Matrix], other: tuple[Topology, Matrix]) -> None:
    topo, matrix = one
    decisions = [decide(matrix, topo, dc) for dc in topo.names]
    # A second matrix over the same DCs (another moment, another observer).
    names = sorted(topo.names)
    _, m2 = other
    directed2 = {(names[i % len(names)], names[j % len(names)]) for i, j in
                 ((int(a[2:]), int(b[2:])) for a, b in m2.directed)}
    decisions += [decide(from_links(names, directed2), topo, dc) for dc in topo.names]
    quorums = [set(d.members) for d in decisions if d.in_quorum]
    for s, t in combinations(quorums, 2):
        assert s & t


def topo_of(*specs: tuple[str, int], tie: str | None = None) -> Topology:
    return Topology("c", tuple(DcSpec(n, w) for n, w in specs), tie_breaker=tie)


def full(names: list[str]) -> set[tuple[str, str]]:
    return {(a, b) for a in names for b in names if a != b}


def test_majority_counts_configured_weight_not_visible_dcs() -> None:
    topo = topo_of(("a", 1), ("b", 1), ("c", 1), ("d", 1), ("e", 1))
    m = from_links(["a", "b", "c", "d", "e"], full(["a", "b"]))
    d = decide(m, topo, "a")
    assert not d.in_quorum and d.best == ("a", "b") and d.weight == 2 and d.threshold == 3
    assert decide(from_links(topo.names, full(["a", "b", "c"])), topo, "a").members == ("a", "b", "c")


def test_one_way_link_does_not_count() -> None:
    topo = topo_of(("a", 1), ("b", 1), ("c", 1))
    m = from_links(["a", "b", "c"], full(["a", "b"]) | {("a", "c")})
    assert m.one_way() == [("a", "c")]
    assert decide(m, topo, "a").members == ("a", "b")
    assert not decide(m, topo, "c").in_quorum


def test_even_split_fences_both_halves_unless_tie_breaker() -> None:
    names = ["a", "b", "c", "d"]
    m = from_links(names, full(["a", "b"]) | full(["c", "d"]))
    plain = topo_of(*((n, 1) for n in names))
    assert [decide(m, plain, n).in_quorum for n in names] == [False] * 4
    tb = topo_of(*((n, 1) for n in names), tie="c")
    assert [decide(m, tb, n).in_quorum for n in names] == [False, False, True, True]
    assert "tie-breaker c" in decide(m, tb, "d").reason


def test_non_transitive_partition_gives_two_overlapping_quorums() -> None:
    topo = topo_of(("a", 1), ("b", 1), ("c", 1))
    m = from_links(["a", "b", "c"], full(["a", "b"]) | full(["b", "c"]))
    da, db, dc = (decide(m, topo, n) for n in "abc")
    assert da.members == ("a", "b") and dc.members == ("b", "c")
    assert db.in_quorum and db.members == ("a", "b")  # tie between equal cliques: sorted names


def test_weights_and_witness() -> None:
    topo = Topology("c", (DcSpec("a", 2), DcSpec("b", 1), DcSpec("w", 1, witness=True), DcSpec("c", 1)))
    m = from_links(topo.names, full(["a", "w"]))
    d = decide(m, topo, "a")
    assert d.in_quorum and d.members == ("a", "w") and d.weight == 3 and d.total_weight == 5
    alone = decide(from_links(topo.names, full(["b", "c", "w"]) - full(["w", "c"])), topo, "a")
    assert not alone.in_quorum and alone.weight == 2
    d2 = decide(from_links(topo.names, full(["a", "w", "b"])), topo, "w")
    assert d2.in_quorum and d2.members == ("a", "b", "w")


def test_unknown_dc_is_never_in_quorum() -> None:
    topo = topo_of(("a", 1))
    assert not decide(from_links(["a"], set()), topo, "zz").in_quorum
    assert decide(from_links(["a"], set()), topo, "a").members == ("a",)


def test_check_invariants_catches_a_forged_decision() -> None:
    topo = topo_of(("a", 1), ("b", 1), ("c", 1))
    m = from_links(["a", "b", "c"], full(["a", "b"]))
    good = decide(m, topo, "a")
    good.check_invariants(m, topo)
    forged = [
        QuorumDecision("a", True, ("a", "c"), 2, 2, 3, ("a", "c"), "forged"),
        QuorumDecision("a", False, (), 1, 2, 3, ("a",), "forged"),
        QuorumDecision("a", True, ("a", "b"), 3, 2, 3, ("a", "b"), "forged"),
        QuorumDecision("a", True, (), 2, 2, 3, ("a", "b"), "forged"),
    ]
    for bad in forged:
        with pytest.raises(QuorumInvariantError):
            bad.check_invariants(m, topo)


@st.composite
def big_scenarios(draw: st.DrawFn) -> tuple[Topology, Matrix]:
    n = draw(st.integers(min_value=10, max_value=24))
    dcs = [f"x{i:02d}" for i in range(n)]
    specs = tuple(DcSpec(name, weight=draw(st.integers(min_value=1, max_value=3))) for name in dcs)
    density = draw(st.floats(min_value=0.3, max_value=1.0))
    rnd = draw(st.randoms(use_true_random=False))
    und = {(a, b) for a in dcs for b in dcs if a < b and rnd.random() < density}
    return Topology("c", specs), from_links(dcs, und | {(b, a) for a, b in und})


@given(big_scenarios(), st.data())
def test_clique_weight_matches_networkx_on_larger_graphs(
    scenario: tuple[Topology, Matrix], data: st.DataObject
) -> None:
    import networkx as nx

    topo, matrix = scenario
    me = data.draw(st.sampled_from(topo.names))
    d = decide(matrix, topo, me)
    d.check_invariants(matrix, topo)
    graph = nx.Graph()
    for name in matrix.neighbours(me):
        graph.add_node(name, weight=topo.dc(name).weight)
    graph.add_edges_from((a, b) for a, b in matrix.links() if a in graph and b in graph)
    _, rest = nx.max_weight_clique(graph, weight="weight") if len(graph) else ([], 0)
    assert d.weight == topo.dc(me).weight + rest
