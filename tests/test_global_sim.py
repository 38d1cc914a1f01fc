"""The global lock in the deterministic simulator (sim/world/global_sim.py), in virtual time.

Every DC's gate is open throughout (no DC fence): the global lock's own rules must keep
ONE_HOLDER and TERMS_INCREASE under cuts (one-way and full), pauses longer than the lease,
crashes, and clock-rate drift within the bound. Drift beyond the bound must be CAUGHT by
the checker (the checker can fail).
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from coordinator.core.global_register import tolerated_drift
from coordinator.core.topology import GlobalLockSpec
from sim.world.global_sim import GlobalWorld

DCS3 = ("dc1", "dc2", "dc3")
DCS5 = ("dc1", "dc2", "dc3", "dc4", "dc5")


def holder_dc(w: GlobalWorld) -> str:
    h = w.holder()
    assert h is not None
    return h.split("/")[0]


def test_one_holder_acquires_quickly_and_keeps_it() -> None:
    w = GlobalWorld(DCS3, seed=1)
    took = w.wait_for(lambda: w.holder() is not None, 5.0)
    assert took is not None and took < 1.0
    first = w.holder()
    w.run_for(20.0)
    assert w.holder() == first
    assert w.checker.violations == []
    assert len(w.checker.tenures) == 1
    assert w.checker.resource_writes > 20 and w.checker.rejected_writes == 0


def test_isolated_holder_loses_and_majority_takes_over_with_higher_term() -> None:
    w = GlobalWorld(DCS3, seed=2)
    w.wait_for(lambda: w.holder() is not None, 5.0)
    old = w.holder()
    old_term = w.holding()[old or ""]
    w.isolate(holder_dc(w))
    took = w.wait_for(lambda: w.holder() not in (None, old), 20.0)
    assert took is not None
    spec = w.spec
    assert took >= spec.lease
    new = w.holder()
    assert new is not None and w.holding()[new] > old_term
    w.run_for(10.0)
    w.heal_all()
    w.run_for(10.0)
    assert w.holder() == new, "healing does not flap the lock back"
    assert w.checker.violations == []


def test_minority_side_never_acquires() -> None:
    w = GlobalWorld(DCS5, seed=3)
    w.wait_for(lambda: w.holder() is not None, 5.0)
    # cut {dc4, dc5} from {dc1, dc2, dc3}: only the majority side may hold
    for a in ("dc4", "dc5"):
        for b in ("dc1", "dc2", "dc3"):
            w.cut(a, b)
            w.cut(b, a)
    w.run_for(30.0)
    assert holder_dc(w) in ("dc1", "dc2", "dc3")
    assert w.checker.violations == []


def test_graceful_release_hands_over_without_waiting_the_lease() -> None:
    w = GlobalWorld(DCS3, seed=4)
    w.wait_for(lambda: w.holder() is not None, 5.0)
    old = w.holder()
    dc = holder_dc(w)
    w.hosts[dc].invoke(lambda lock, now: lock.release(now, hold_off=10.0))
    assert w.holding() == {}
    took = w.wait_for(lambda: w.holder() not in (None, old), 10.0)
    assert took is not None and took < w.spec.lease, "release lets a contender in before lease + margin"
    assert w.checker.violations == []


def test_pause_longer_than_the_lease_resumes_as_non_holder() -> None:
    w = GlobalWorld(DCS3, seed=5)
    w.wait_for(lambda: w.holder() is not None, 5.0)
    old = w.holder()
    dc = holder_dc(w)
    w.hosts[dc].pause()
    w.run_for(3 * w.spec.lease)
    new = w.holder()
    assert new is not None and new != old
    w.hosts[dc].resume()
    w.run_for(5.0)
    assert w.holder() == new
    assert w.checker.violations == []


def test_crash_and_restart_is_a_new_claimant() -> None:
    w = GlobalWorld(DCS3, seed=6)
    w.wait_for(lambda: w.holder() is not None, 5.0)
    dc = holder_dc(w)
    w.hosts[dc].crash()
    w.run_for(1.0)
    w.hosts[dc].start()
    w.wait_for(lambda: w.holder() is not None, 20.0)
    w.run_for(10.0)
    assert w.holder() is not None
    assert w.checker.violations == []
    terms = [t for _, _, t in w.checker.tenures]
    assert terms == sorted(terms) and len(set(terms)) == len(terms)


def test_drift_within_the_bound_is_safe() -> None:
    spec = GlobalLockSpec("g")
    rho = tolerated_drift(spec) * 0.95
    # holder's clock slow (its lease lasts longer), contenders' clocks fast (they wait less)
    rates = {"dc1": 1 - rho, "dc2": 1 + rho, "dc3": 1 + rho}
    w = GlobalWorld(DCS3, seed=7, spec=spec, rates=rates, max_drift=0.05)
    w.wait_for(lambda: w.holder() is not None, 5.0)
    assert holder_dc(w) == "dc1"
    w.isolate("dc1")
    w.run_for(20.0)
    assert holder_dc(w) != "dc1"
    assert w.checker.violations == []


def test_drift_beyond_the_bound_is_caught() -> None:
    spec = GlobalLockSpec("g")
    rho = tolerated_drift(spec) * 4
    rates = {"dc1": 1 - rho, "dc2": 1 + rho, "dc3": 1 + rho}
    w = GlobalWorld(DCS3, seed=7, spec=spec, rates=rates, max_drift=0.05)
    w.wait_for(lambda: w.holder() is not None, 5.0)
    assert holder_dc(w) == "dc1"
    w.run_for(1.0)
    w.isolate("dc1")
    w.run_for(20.0)
    rules = {v.rule for v in w.checker.violations}
    assert "ONE_HOLDER" in rules


def test_closing_the_dc_gate_ends_the_tenure_at_once() -> None:
    w = GlobalWorld(DCS3, seed=8)
    w.wait_for(lambda: w.holder() is not None, 5.0)
    dc = holder_dc(w)
    w.set_gate(dc, False)
    assert all(not h.startswith(dc + "/") for h in w.holding())
    w.run_for(15.0)
    assert w.holder() is not None and holder_dc(w) != dc
    assert w.checker.violations == []


FAULTS = st.sampled_from(["cut", "oneway", "isolate", "heal", "pause", "crash", "rate", "gate"])


@settings(max_examples=40)
@given(
    seed=st.integers(0, 10_000),
    n=st.sampled_from([3, 4, 5]),
    schedule=st.lists(
        st.tuples(st.floats(0.1, 6.0), FAULTS, st.integers(0, 4), st.integers(0, 4), st.floats(0.0, 1.0)),
        min_size=1,
        max_size=12,
    ),
)
def test_random_schedules_keep_one_holder_and_increasing_terms(
    seed: int, n: int, schedule: list[tuple[float, str, int, int, float]]
) -> None:
    dcs = DCS5[:n]
    spec = GlobalLockSpec("g")
    rho = tolerated_drift(spec)
    w = GlobalWorld(dcs, seed=seed, spec=spec, max_drift=0.05)
    paused: list[str] = []
    for gap, fault, i, j, x in schedule:
        w.run_for(gap)
        a, b = dcs[i % n], dcs[j % n]
        host = w.hosts[a]
        if fault == "cut" and a != b:
            w.cut(a, b)
            w.cut(b, a)
        elif fault == "oneway" and a != b:
            w.cut(a, b)
        elif fault == "isolate":
            w.isolate(a)
        elif fault == "heal":
            w.heal_all()
        elif fault == "pause":
            host.pause()
            paused.append(a)
            w.run_for(x * 3 * spec.lease)
            host.resume()
        elif fault == "crash":
            host.crash()
            w.run_for(x * 2)
            host.start()
        elif fault == "rate":
            host.set_rate(1 + rho * 0.95 * (2 * x - 1))
        elif fault == "gate":
            w.set_gate(a, x < 0.5)
    w.heal_all()
    for d in dcs:
        w.set_gate(d, True)
    w.run_for(3 * (spec.lease + spec.margin) + 5.0)
    assert w.checker.violations == []
    assert w.holder() is not None, "after healing, someone holds the lock (liveness)"
