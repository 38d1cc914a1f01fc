"""The simulator's building blocks: event heap ordering, network composition, fault links."""

from __future__ import annotations

import random

from sim.world.clock import EventQueue
from sim.world.faults import FaultSpec, affected_links
from sim.world.network import Network
from sim.world.runs import explore_topology
from sim.world.truth import quorum_cliques, quorum_members

DCS = ("dc1", "dc2", "dc3", "dc4", "dc5")


def test_events_run_in_time_then_schedule_order_and_cancel_is_honoured() -> None:
    q = EventQueue()
    seen: list[str] = []
    q.schedule(2.0, seen.append, "late")
    q.schedule(1.0, seen.append, "first")
    q.schedule(1.0, seen.append, "second")
    doomed = q.schedule(1.5, seen.append, "cancelled")
    doomed.cancel()
    q.run_until(5.0)
    assert seen == ["first", "second", "late"]
    assert q.now == 5.0


def test_scheduling_in_the_past_runs_now_not_before() -> None:
    q = EventQueue()
    times: list[float] = []
    def later() -> None:
        q.schedule(1.0, lambda: times.append(q.now))

    q.schedule(3.0, later)
    q.run_until(10.0)
    assert times == [3.0]


def test_barrier_runs_before_events_due_at_or_after_it_and_can_move() -> None:
    q = EventQueue()
    seen: list[tuple[str, float]] = []
    q.schedule(1.0, lambda: seen.append(("a", q.now)))
    q.schedule(2.0, lambda: seen.append(("b", q.now)))
    q.schedule(4.0, lambda: seen.append(("c", q.now)))
    dead = q.schedule(1.5, lambda: seen.append(("dead", q.now)))
    dead.cancel()
    q.barrier = 2.0
    barriers = iter([3.5, None])

    def on_barrier(at: float) -> None:
        seen.append(("barrier", at))
        q.barrier = next(barriers)

    q.run_with_barrier(10.0, on_barrier)
    assert seen == [("a", 1.0), ("barrier", 2.0), ("b", 2.0), ("barrier", 3.5), ("c", 4.0)]
    assert q.now == 10.0 and q.processed == 3


def test_overlapping_cuts_compose_and_one_heal_does_not_heal_the_other() -> None:
    net = Network(DCS, random.Random(1))
    net.cut(1, [("dc1", "dc2")])
    net.cut(2, [("dc1", "dc2"), ("dc2", "dc1")])
    net.uncut(2)
    assert not net.is_up("dc1", "dc2")
    assert net.is_up("dc2", "dc1")
    assert net.transmit("dc1", "dc2") is None
    assert net.transmit("dc2", "dc1") is not None
    changes = net.changes()
    assert [link for link, _ in changes] == [("dc1", "dc2")]
    assert net.changes() == []


def test_loss_and_delay_are_drawn_from_the_seeded_rng() -> None:
    a = Network(DCS, random.Random(7))
    b = Network(DCS, random.Random(7))
    for net in (a, b):
        net.degrade(1, [("dc1", "dc2")], delay=0.2, loss=0.5)
    draws_a = [a.transmit("dc1", "dc2") for _ in range(200)]
    draws_b = [b.transmit("dc1", "dc2") for _ in range(200)]
    assert draws_a == draws_b
    lost = sum(1 for d in draws_a if d is None)
    assert 50 < lost < 150
    assert all(d is None or d >= 0.2 for d in draws_a)


def test_majorities_ring_leaves_no_quorum_clique_and_bridge_leaves_two() -> None:
    topo = explore_topology(5)
    ring = affected_links(FaultSpec("ring", 0.0, dcs=DCS), DCS)
    assert quorum_members(topo, ring) == frozenset()
    spec = FaultSpec("bridge", 0.0, dcs=("dc3",), groups=(("dc1", "dc2"), ("dc4", "dc5")))
    bridge = affected_links(spec, DCS)
    expected = [frozenset({"dc1", "dc2", "dc3"}), frozenset({"dc3", "dc4", "dc5"})]
    assert quorum_cliques(topo, bridge) == expected


def test_one_way_cut_breaks_the_pair_for_quorum() -> None:
    topo = explore_topology(3)
    links = affected_links(FaultSpec("cut", 0.0, dcs=("dc1", "dc2"), oneway=True), ("dc1", "dc2", "dc3"))
    assert links == [("dc1", "dc2")]
    assert quorum_cliques(topo, links) == [frozenset({"dc1", "dc3"}), frozenset({"dc2", "dc3"})]
    isolate = affected_links(FaultSpec("isolate", 0.0, dcs=("dc1",)), ("dc1", "dc2", "dc3"))
    assert quorum_members(topo, isolate) == frozenset({"dc2", "dc3"})


def test_fabric_hands_the_emulator_what_its_http_server_would_decode() -> None:
    """The simulator's request conversion equals the daemon's URL rendering as decoded by the
    emulator's aiohttp server (yarl): no parallel sim-only protocol."""
    from yarl import URL

    from coordinator.consul import sansio
    from coordinator.consul.client import render_query
    from sim.world.fabric import to_emulator

    requests = [
        sansio.kv_get("coordinator/sim/dc/dc1/row", dc="dc2", consistency="consistent"),
        sansio.kv_get("a b/ü/x%y", index=42, wait=5.0),
        sansio.kv_put("coordinator/sim/dc/dc1/leader", b"v", acquire="0f3c-sess"),
        sansio.session_create(name="n", ttl=10.0, lock_delay=2.0),
        sansio.status_leader(dc="dc3"),
    ]
    for req in requests:
        url = URL(req.path + ("?" + render_query(req.params) if req.params else ""), encoded=True)
        emu = to_emulator(req)
        assert (emu.method, emu.path, emu.query) == (req.method, url.path, tuple(url.query.items()))
        assert emu.body == (req.body or b"")
