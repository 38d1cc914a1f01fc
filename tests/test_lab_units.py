"""Pure parts of the partition lab (no root needed): fault -> link mapping, the protected
resource's rule, and the history analysis (latencies, false fences)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from coordinator.core.topology import DcSpec, Topology
from sim.checker import Violation
from sim.history import Event, meta_event
from sim.lab.analyze import fault_latencies, percentile, render, writable_timeline
from sim.lab.faults import dropped_links
from sim.lab.resource import ResourceState
from sim.lab.scenarios import QUICK, SCENARIOS
from sim.lab.status import compact
from sim.report.timeline import build
from sim.world.faults import FaultSpec

NAMES = ["dc1", "dc2", "dc3", "dc4", "dc5"]


def test_cut_both_ways_and_one_way() -> None:
    assert dropped_links(FaultSpec("cut", 0, dcs=("dc1", "dc2")), NAMES) == {("dc1", "dc2"), ("dc2", "dc1")}
    assert dropped_links(FaultSpec("cut", 0, dcs=("dc1", "dc2"), oneway=True), NAMES) == {("dc1", "dc2")}


def test_ring_keeps_only_neighbours() -> None:
    drops = dropped_links(FaultSpec("ring", 0), NAMES)
    for i, a in enumerate(NAMES):
        for b in (NAMES[(i + 1) % 5], NAMES[i - 1]):
            assert (a, b) not in drops
    assert ("dc1", "dc3") in drops and ("dc3", "dc1") in drops
    assert len(drops) == 2 * 5  # 10 pairs, 5 of them neighbours, both directions


def test_bridge_cuts_only_across_the_sides() -> None:
    spec = FaultSpec("bridge", 0, dcs=("dc3",), groups=(("dc1", "dc2"), ("dc4", "dc5")))
    drops = dropped_links(spec, NAMES)
    assert len(drops) == 8
    assert not any("dc3" in link for link in drops)


def test_partition_cuts_every_cross_pair() -> None:
    spec = FaultSpec("partition", 0, groups=(("dc1",), ("dc2", "dc3")))
    assert dropped_links(spec, NAMES[:3]) == {("dc1", "dc2"), ("dc2", "dc1"), ("dc1", "dc3"), ("dc3", "dc1")}


@given(st.lists(st.tuples(st.sampled_from(["a", "b"]), st.integers(0, 50)), max_size=60))
def test_resource_accepted_tokens_never_decrease(attempts: list[tuple[str, int]]) -> None:
    state = ResourceState()
    accepted: dict[str, list[int]] = {}
    for dc, token in attempts:
        best = state.highest.get(dc)
        ok = state.attempt(dc, token)
        assert ok == (best is None or token >= best)
        if ok:
            accepted.setdefault(dc, []).append(token)
    for tokens in accepted.values():
        assert tokens == sorted(tokens)


def _topo() -> Topology:
    return Topology("t", tuple(DcSpec(n) for n in NAMES[:3]))


def _rep(t: float, dc: str, allowed: bool, replica: str = "r1") -> Event:
    return {"t": t, "kind": "replica", "dc": dc, "replica": f"{dc}-{replica}", "role": "leader",
            "state": "writable" if allowed else "fenced", "allowed": allowed,
            "token": 5 if allowed else None, "reason": None if allowed else "not-in-quorum"}


def _fault(t: float, phase: str, links: list[list[str]], kind: str = "isolate") -> Event:
    ev: dict[str, Any] = {"t": t, "kind": "fault", "phase": phase, "id": 1, "fault": kind,
                          "description": "", "dcs": ["dc3"], "links": links}
    return ev


def _links(t: float, links: list[list[str]], up: bool) -> list[Event]:
    return [{"t": t, "kind": "link", "from": a, "to": b, "up": up} for a, b in links]


def test_latencies_measure_the_minority_and_count_false_fences() -> None:
    links = [["dc3", "dc1"], ["dc1", "dc3"], ["dc3", "dc2"], ["dc2", "dc3"]]
    history = [
        meta_event(_topo(), None, "lab", {"dc1": 1, "dc2": 1, "dc3": 1}),
        _rep(1.0, "dc1", True), _rep(1.0, "dc2", True), _rep(1.0, "dc3", True),
        _fault(10.0, "start", links), *_links(10.0, links, False),
        _rep(11.5, "dc3", False),
        _rep(12.0, "dc2", False), _rep(12.5, "dc2", True),  # a false fence on the majority side
        *_links(20.0, links, True), _fault(20.0, "end", links),
        _rep(23.0, "dc3", True),
    ]
    lat = fault_latencies(history)
    assert lat.fence == [1.5]
    assert lat.rejoin == [3.0]
    assert lat.false_fences == 1
    assert lat.unfenced == []


def test_latencies_report_a_minority_that_never_fenced() -> None:
    links = [["dc3", "dc1"], ["dc1", "dc3"], ["dc3", "dc2"], ["dc2", "dc3"]]
    history = [
        meta_event(_topo(), None, "lab", {"dc1": 1, "dc2": 1, "dc3": 1}),
        _rep(1.0, "dc1", True), _rep(1.0, "dc2", True), _rep(1.0, "dc3", True),
        _fault(10.0, "start", links), *_links(10.0, links, False),
        *_links(20.0, links, True), _fault(20.0, "end", links),
    ]
    assert fault_latencies(history).unfenced == ["dc3"]


def test_one_way_cuts_starting_together_make_one_episode() -> None:
    """Two one-way cuts 10 ms apart isolate dc3; dc3's fence is not a false fence."""
    history = [
        meta_event(_topo(), None, "lab", {"dc1": 1, "dc2": 1, "dc3": 1}),
        _rep(1.0, "dc1", True), _rep(1.0, "dc2", True), _rep(1.0, "dc3", True),
        _fault(10.0, "start", [["dc3", "dc1"]], "cut"), *_links(10.0, [["dc3", "dc1"]], False),
        *_links(10.01, [["dc3", "dc2"]], False),
        _rep(11.0, "dc3", False),
        *_links(20.0, [["dc3", "dc1"], ["dc3", "dc2"]], True), _fault(20.0, "end", [["dc3", "dc1"]], "cut"),
        _rep(21.0, "dc3", True),
    ]
    lat = fault_latencies(history)
    assert lat.false_fences == 0
    assert [round(x, 2) for x in lat.fence] == [0.99]
    assert lat.rejoin == [1.0]


def test_dc_writable_while_any_replica_is() -> None:
    history = [
        meta_event(_topo(), None, "lab", {"dc1": 2}),
        _rep(1.0, "dc1", True, "r1"), _rep(2.0, "dc1", True, "r2"), _rep(3.0, "dc1", False, "r1"),
        _rep(4.0, "dc1", False, "r2"),
    ]
    assert writable_timeline(history)["dc1"] == [(1.0, True), (4.0, False)]


def test_percentile_and_scenario_catalogue() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([float(i) for i in range(1, 101)], 99) == 99.0
    assert set(QUICK) <= set(SCENARIOS)
    for name in ("isolate-one", "one-way", "majorities-ring", "paused-leader", "leader-kill-partition",
                 "flapping", "heal-catch-up"):
        assert name in SCENARIOS


def test_report_is_drawn_with_the_simulators_renderer(tmp_path: Path) -> None:
    """render() writes report.html + report.png next to the history; the checker's
    violations appear in the page; replicas announced before their processes run are
    drawn as starting, not fenced."""
    links = [["dc3", "dc1"], ["dc1", "dc3"], ["dc3", "dc2"], ["dc2", "dc3"]]
    starting = [{"t": 0.1, "kind": "replica", "dc": dc, "replica": f"{dc}-r1", "role": "down",
                 "state": "starting", "allowed": False, "token": None, "reason": "starting"}
                for dc in NAMES[:3]]
    history = [
        meta_event(_topo(), None, "lab", {"dc1": 1, "dc2": 1, "dc3": 1}, "unit"),
        *starting,
        _rep(1.0, "dc1", True), _rep(1.0, "dc2", True), _rep(1.0, "dc3", True),
        _fault(10.0, "start", links), *_links(10.0, links, False),
        _rep(11.5, "dc3", False),
        *_links(20.0, links, True), _fault(20.0, "end", links),
        _rep(23.0, "dc3", True), {"t": 24.0, "kind": "end"},
    ]
    found = [Violation(12.0, "quorum-rule", "made up for the test", "dc3")]
    html_path, png_path = render(history, tmp_path, "report", found)
    assert Path(html_path) == tmp_path / "report.html" and Path(png_path) == tmp_path / "report.png"
    assert Path(png_path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = Path(html_path).read_text(encoding="utf-8")
    assert "quorum-rule" in page and "made up for the test" in page
    assert "unit  (lab)" in page and "seed None" not in page
    lanes = build(history).lanes
    assert [s.state for s in lanes["dc3"]] == ["fenced", "starting", "writable", "fenced", "writable"]
    assert lanes["dc3"][1].start == 0.1 and lanes["dc3"][1].end == 1.0


def test_status_sample_keeps_what_explains_a_fence() -> None:
    doc = {"role": "leader", "dc_state": "writable", "allowed": True, "reason": None, "lease_remaining": 1.2,
           "consul_error": None, "quorum": {"in_quorum": True, "members": ["dc1", "dc2"], "reason": "ok",
                                            "round_started_at": 12.5},
           "undirected": {"dc1": {"dc2": True, "dc3": False}, "dc3": {"dc1": False, "dc2": False}},
           "transitions": [{}, {}]}
    out = compact(doc)
    assert out["links_down"] == ["dc1-dc3", "dc2-dc3"]
    assert out["round_started_at"] == 12.5 and out["members"] == ["dc1", "dc2"]
    assert out["transitions"] == 2
    assert compact({})["in_quorum"] is None
