"""Timer derivation and ordering rules."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coordinator.core.timers import derive, stretch, timer_violations
from coordinator.core.topology import Timers


def test_defaults_are_valid_and_derive_matches_the_safety_argument() -> None:
    t = Timers()
    assert timer_violations(t) == []
    d = derive(t)
    window = t.lease + 2 * t.row_fresh + t.probe_timeout
    assert d.takeover_after == pytest.approx(t.row_fresh + stretch(window, t) + t.takeover_margin)
    assert d.max_fence_latency == pytest.approx(t.row_fresh + t.lease)
    assert d.takeover_after > stretch(d.max_fence_latency, t)


def test_stretch_is_identity_without_drift_and_grows_with_it() -> None:
    assert stretch(2.0, Timers(max_drift=0.0)) == 2.0
    assert stretch(2.0, Timers(max_drift=0.01)) == pytest.approx(2.0 * 1.01 / 0.99)


@pytest.mark.parametrize(("change", "field"), [
    ({"probe_timeout": 0.5}, "probe_timeout"),
    ({"lease": 0.8}, "lease"),
    ({"row_fresh": 0.9}, "row_fresh"),
    ({"session_ttl": 5.0}, "session_ttl"),
    ({"check_interval": 1.0}, "check_interval"),
    ({"lock_delay": 1.5}, "lock_delay"),
    ({"lock_delay": 61.0}, "lock_delay"),
    ({"max_drift": 0.5}, "max_drift"),
    ({"lease": 0.0}, "lease"),
    ({"takeover_margin": -1.0}, "takeover_margin"),
])
def test_each_rule_is_reported_on_its_field(change: dict[str, float], field: str) -> None:
    fields = [f for f, _ in timer_violations(dataclasses.replace(Timers(), **change))]
    assert field in fields


@given(st.builds(
    Timers,
    probe_interval=st.floats(0.05, 5), probe_timeout=st.floats(0.01, 5), lease=st.floats(0.05, 20),
    row_fresh=st.floats(0.05, 20), max_drift=st.floats(0, 0.2), lock_delay=st.floats(0, 60),
    takeover_margin=st.floats(0, 5),
))
def test_valid_timers_order_fencing_before_takeover(t: Timers) -> None:
    if timer_violations(t):
        return
    d = derive(t)
    assert d.takeover_after > stretch(d.max_fence_latency, t)
    assert t.lock_delay >= stretch(t.lease, t)
