"""The history checker on hand-written histories: each invariant fires when broken, not otherwise."""

from __future__ import annotations

from typing import Any

from coordinator.core.timers import derive
from sim.checker import Checker, check_history
from sim.history import meta_event
from sim.world.runs import explore_topology

TOPO = explore_topology(3)
META = meta_event(TOPO, 1, "lab", {"dc1": 2, "dc2": 2, "dc3": 2})


def rep(t: float, dc: str, replica: str, allowed: bool, token: int | None = None) -> dict[str, Any]:
    return {"t": t, "kind": "replica", "dc": dc, "replica": replica, "role": "leader",
            "state": "writable" if allowed else "fenced", "allowed": allowed, "token": token,
            "reason": None if allowed else "not-in-quorum"}


def cut(t: float, a: str, b: str, up: bool = False) -> list[dict[str, Any]]:
    return [{"t": t, "kind": "link", "from": a, "to": b, "up": up},
            {"t": t, "kind": "link", "from": b, "to": a, "up": up}]


def names(violations: list[Any]) -> list[str]:
    return [v.invariant for v in violations]


def test_two_writable_replicas_in_one_dc() -> None:
    events = [META, rep(1, "dc1", "dc1-1", True, 5), rep(2, "dc1", "dc1-2", True, 6)]
    assert "one-writable-per-dc" in names(check_history(events))


def test_handover_is_fine_and_token_must_grow() -> None:
    ok = [META, rep(1, "dc1", "dc1-1", True, 5), rep(2, "dc1", "dc1-1", False),
          rep(3, "dc1", "dc1-2", True, 9), rep(4, "dc1", "dc1-2", True, 9)]
    assert check_history(ok) == []
    bad = [META, rep(1, "dc1", "dc1-1", True, 5), rep(2, "dc1", "dc1-1", False),
           rep(3, "dc1", "dc1-2", True, 5)]
    assert names(check_history(bad)) == ["token-monotonic"]


def test_resource_accepting_a_lower_token() -> None:
    events = [META,
              {"t": 1, "kind": "write", "dc": "dc1", "replica": "dc1-1", "token": 7, "accepted": True},
              {"t": 2, "kind": "write", "dc": "dc1", "replica": "dc1-2", "token": 6, "accepted": True}]
    assert names(check_history(events)) == ["resource-stale-write"]
    rejected = [*events[:2], {**events[2], "accepted": False}]
    assert check_history(rejected) == []


def test_isolated_dc_must_fence_within_the_grace() -> None:
    checker = Checker(META)
    grace = checker.grace_own
    assert grace < checker.grace_links
    isolation = [*cut(10, "dc1", "dc2"), *cut(10, "dc1", "dc3")]
    writable = rep(1, "dc1", "dc1-1", True, 3)
    in_time = [META, writable, *isolation, rep(10 + grace * 0.9, "dc1", "dc1-1", False)]
    assert check_history(in_time) == []
    too_late = [META, writable, *isolation, rep(10 + grace * 1.1, "dc1", "dc1-1", False)]
    found = check_history(too_late)
    assert names(found)[0] == "quorum-rule"
    assert abs(found[0].t - (10 + grace)) < 1e-6, "the deadline fires at the grace, not at the next event"


def test_a_cut_between_two_peers_is_learnt_one_publication_later() -> None:
    """dc4,dc5 | dc1,dc2,dc3, then dc1 <-> dc2 is cut: no quorum clique is left anywhere.
    dc1 and dc2 see it in their own failed reads (grace_own). dc3 reads both fine and
    learns of the cut only from dc1's or dc2's next published row, so it may stay
    writable up to grace_links (seed 101056 of the 5-DC soak: dc3 fenced 2.449 s after the
    cut, just past grace_own)."""
    topo5 = explore_topology(5)
    meta5 = meta_event(topo5, 1, "lab", {f"dc{i}": 1 for i in range(1, 6)})
    checker = Checker(meta5)
    partition = [ev for a in ("dc4", "dc5") for b in ("dc1", "dc2", "dc3") for ev in cut(5, a, b)]
    start = [meta5, *(rep(1, dc, f"{dc}-1", True, 3) for dc in ("dc1", "dc2", "dc3")), *partition,
             *cut(10, "dc1", "dc2")]
    own, links = checker.grace_own, checker.grace_links
    fenced_in_time = [rep(10 + own * 0.9, "dc1", "dc1-1", False), rep(10 + own * 0.9, "dc2", "dc2-1", False)]
    third_between = [*start, *fenced_in_time, rep(10 + (own + links) / 2, "dc3", "dc3-1", False)]
    assert check_history(third_between) == []
    third_late = [*start, *fenced_in_time, rep(10 + links * 1.05, "dc3", "dc3-1", False)]
    assert [(v.invariant, v.dc) for v in check_history(third_late)] == [("quorum-rule", "dc3")]
    others_in_time = [rep(10 + own * 0.9, "dc2", "dc2-1", False), rep(10 + own * 0.9, "dc3", "dc3-1", False)]
    first_late = [*start, *others_in_time, rep(10 + (own + links) / 2, "dc1", "dc1-1", False)]
    assert [(v.invariant, v.dc) for v in check_history(first_late)] == [("quorum-rule", "dc1")]


def test_fenced_before_takeover_when_grace_is_generous() -> None:
    takeover = derive(TOPO.timers).takeover_after
    events = [META, rep(1, "dc1", "dc1-1", True, 3), *cut(10, "dc1", "dc2"), *cut(10, "dc1", "dc3"),
              {"t": 10 + takeover + 1, "kind": "end"}]
    assert set(names(check_history(events))) == {"quorum-rule", "fenced-before-takeover"}


def test_witness_never_writable() -> None:
    from coordinator.core.topology import DcSpec, Topology

    topo = Topology("c", (DcSpec("a"), DcSpec("b"), DcSpec("w", witness=True)))
    meta = meta_event(topo, 1, "lab", {"a": 1, "b": 1, "w": 1})
    assert names(check_history([meta, rep(1, "w", "w-1", True, 1)])) == ["witness-never-writable"]


def test_liveness_after_quiet() -> None:
    bound = 30.0
    events = [META, rep(1, "dc1", "dc1-1", True, 1), rep(1, "dc2", "dc2-1", True, 1),
              {"t": 5, "kind": "quiet"}, rep(20, "dc3", "dc3-1", True, 2), {"t": 100, "kind": "end"}]
    assert check_history(events, liveness_bound=bound) == []
    late = [*events[:4], rep(50, "dc3", "dc3-1", True, 2), {"t": 100, "kind": "end"}]
    found = check_history(late, liveness_bound=bound)
    assert names(found) == ["liveness-writable"] and found[0].dc == "dc3"


def test_majority_side_must_stay_writable_during_a_minority_partition() -> None:
    start = [META, rep(1, "dc1", "dc1-1", True, 1), rep(1, "dc2", "dc2-1", True, 1),
             {"t": 10, "kind": "fault", "phase": "start", "id": 1, "fault": "isolate", "description": "",
              "dcs": ["dc3"], "links": []}, *cut(10, "dc3", "dc1"), *cut(10, "dc3", "dc2")]
    assert check_history([*start, rep(20, "dc1", "dc1-1", False)])[0].invariant == "majority-never-fenced"
    assert check_history([*start, rep(20, "dc3", "dc3-1", False)]) == []


def glob_(t: float, holder: str, term: int | None, until: float | None, dc: str = "dc1") -> dict[str, Any]:
    return {"t": t, "kind": "global", "lock": "g", "dc": dc, "replica": holder.split("#")[0],
            "holder": holder, "term": term, "until": until}


def test_global_hand_over_after_the_old_belief_ran_out_is_fine() -> None:
    events = [META, glob_(1, "dc1-1#0", 1, 5.0), glob_(2, "dc1-1#0", 1, 6.0),
              glob_(6.5, "dc2-1#0", 2, 9.0, "dc2"), glob_(7, "dc1-1#0", None, None)]
    assert check_history(events) == []


def test_global_two_holders_at_one_instant_is_reported_once_per_overlap() -> None:
    events = [META, glob_(1, "dc1-1#0", 1, 5.0), glob_(4, "dc2-1#0", 2, 9.0, "dc2"),
              glob_(4.5, "dc2-1#0", 2, 9.5, "dc2")]
    assert names(check_history(events)) == ["global-one-holder"]


def test_global_belief_that_ran_out_does_not_count_but_an_extension_does() -> None:
    lapsed = [META, glob_(1, "dc1-1#0", 1, 3.0), glob_(3.0, "dc2-1#0", 2, 9.0, "dc2")]
    assert check_history(lapsed) == []
    extended = [META, glob_(1, "dc1-1#0", 1, 3.0), glob_(2.0, "dc1-1#0", 1, 4.0),
                glob_(3.5, "dc2-1#0", 2, 9.0, "dc2")]
    assert names(check_history(extended)) == ["global-one-holder"]


def test_global_terms_must_increase_across_tenures() -> None:
    events = [META, glob_(1, "dc1-1#0", 4, 3.0), glob_(5, "dc2-1#0", 4, 9.0, "dc2")]
    assert names(check_history(events)) == ["global-terms-increase"]


def fence_key(t: float, on: bool) -> dict[str, Any]:
    return {"t": t, "kind": "admin-fence", "dc": "dc1", "on": on, "replica": "dc1-2"}


def test_admin_fenced_dc_must_stop_saying_yes_within_a_round() -> None:
    bound = Checker(META).admin_bound
    writable = rep(1, "dc1", "dc1-1", True, 3)
    in_time = [META, writable, fence_key(10, True), rep(10 + bound * 0.9, "dc1", "dc1-1", False)]
    assert check_history(in_time) == []
    too_late = [META, writable, fence_key(10, True), rep(10 + bound * 1.1, "dc1", "dc1-1", False)]
    found = check_history(too_late)
    assert names(found) == ["admin-fence-holds"] and abs(found[0].t - (10 + bound)) < 1e-6
    # a new leader saying yes while the key exists is caught too; after the delete it may
    new_leader = [META, fence_key(10, True), rep(20, "dc1", "dc1-2", True, 9)]
    assert names(check_history(new_leader)) == ["admin-fence-holds"]
    lifted = [META, fence_key(10, True), fence_key(15, False), rep(20, "dc1", "dc1-2", True, 9)]
    assert check_history(lifted) == []
