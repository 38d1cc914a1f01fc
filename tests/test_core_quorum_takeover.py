"""Takeover safety on a small discrete-event model of DC leaders running probe rounds.

The model uses the real core pieces (PeerTracker, assemble, decide, takeover_in) and
plays the shell: clocks with offsets and rate drift (within max_drift), row writes that
land up to probe_timeout after their round start (or not at all after a leader change:
check-session), consistent reads served at a random moment within the reader's timeout,
cut links (one-way cuts fail the read), failed reads and leader changes (lock_delay).

Property (docs/safety.md, "Takeover"): whenever DC x, at a round whose decision has x in
quorum, sees ``takeover_in[m] <= 0``, m is NOT writable at the real moment when x's clock
read ``now - row_fresh``: the writable period of m that could have held its token is over.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from hypothesis import given
from hypothesis import strategies as st

from coordinator.core.matrix import assemble
from coordinator.core.quorum import decide, takeover_in
from coordinator.core.rows import PeerTracker, Row
from coordinator.core.topology import DcSpec, Timers, Topology


@dataclass
class Clock:
    offset: float
    rate: float

    def local(self, real: float) -> float:
        return self.offset + self.rate * real

    def real(self, local: float) -> float:
        return (local - self.offset) / self.rate


@dataclass
class Term:
    name: str
    start: float
    end: float
    tracker: PeerTracker | None = None


@dataclass
class Outcome:
    writable: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    takeovers: list[tuple[str, str, float, float]] = field(default_factory=list)
    """(x, m, real time of the decision, real moment m must not be writable at)."""

    def violations(self) -> list[str]:
        out = []
        for x, m, at, must_be_down in self.takeovers:
            for start, end in self.writable.get(m, []):
                if start <= must_be_down <= end:
                    out.append(f"{x} took over {m} at {at:.3f}; {m} writable {start:.3f}..{end:.3f}")
        return out


@dataclass
class Cut:
    a: str
    b: str
    start: float
    end: float


def simulate(
    topo: Topology,
    clocks: dict[str, Clock],
    cuts: list[Cut],
    leader_changes: dict[str, list[float]],
    seed: int,
    horizon: float,
    fail_rate: float = 0.05,
    takeover_after: float | None = None,
) -> Outcome:
    t = topo.timers
    rnd = random.Random(seed)
    out = Outcome()
    store: dict[str, Row] = {}
    events: list[tuple[float, int, Callable[[], None]]] = []
    counter = [0]

    def at(when: float, fn: Callable[[], None]) -> None:
        counter[0] += 1
        heapq.heappush(events, (when, counter[0], fn))

    def linked(a: str, b: str, when: float) -> bool:
        return not any(c.a == a and c.b == b and c.start <= when < c.end for c in cuts)

    # Leader terms per DC: back to back, each successor lock_delay after its predecessor.
    terms: dict[str, list[Term]] = {}
    for dc in topo.names:
        starts, ends, begin = [], [], rnd.uniform(0.0, t.probe_interval)
        for change in sorted(leader_changes.get(dc, [])):
            starts.append(begin)
            ends.append(change)
            begin = change + t.lock_delay * (1 + t.max_drift)
        starts.append(begin)
        ends.append(float("inf"))
        terms[dc] = [Term(f"{dc}/{i}", s, e) for i, (s, e) in enumerate(zip(starts, ends, strict=True))]

    def start_term(dc: str, term: Term) -> None:
        clock = clocks[dc]
        term.tracker = PeerTracker(dc, clock.local(term.start), t)
        schedule_round(dc, term, clock.local(term.start), 0)

    def schedule_round(dc: str, term: Term, t0: float, seq: int) -> None:
        clock = clocks[dc]
        if clock.real(t0) >= min(term.end, horizon):
            return
        at(clock.real(t0), lambda: round_start(dc, term, t0, seq))

    def round_start(dc: str, term: Term, t0: float, seq: int) -> None:
        clock, tracker = clocks[dc], term.tracker
        assert tracker is not None
        real0 = clock.real(t0)
        real_timeout = clock.real(t0 + t.probe_timeout) - real0
        row = Row(dc=dc, leader=term.name, seq=seq, reach=tracker.reach(t0), state="x")
        written: list[bool] = []
        apply_at = real0 + rnd.uniform(0.0, 0.999) * real_timeout

        def apply() -> None:
            if term.start <= apply_at < term.end:  # check-session on the leader key
                store[dc] = row
                written.append(True)

        at(apply_at, apply)
        results: dict[str, Row | None] = {}
        for peer in topo.names:
            if peer == dc:
                continue
            ok = linked(dc, peer, real0) and linked(peer, dc, real0) and rnd.random() >= fail_rate
            results[peer] = None
            if ok:
                def serve(peer: str = peer) -> None:
                    results[peer] = store.get(peer)
                at(real0 + rnd.uniform(0.0, 0.999) * real_timeout, serve)

        def round_end() -> None:
            now = t0 + t.probe_timeout
            for peer, got in sorted(results.items()):
                if got is None:
                    tracker.observe_failure(peer, t0)
                else:
                    tracker.observe_row(peer, got, t0)
            matrix = assemble(dc, topo, tracker, tracker.rows(), now, t)
            decision = decide(matrix, topo, dc)
            decision.check_invariants(matrix, topo)
            if decision.in_quorum and written and not topo.dc(dc).witness:
                out.writable.setdefault(dc, []).append((clock.real(now), clock.real(t0 + t.lease)))
            if decision.in_quorum:
                if takeover_after is None:
                    remaining = takeover_in(dc, topo, tracker, decision.members, now, t)
                else:
                    remaining = {m: takeover_after - (now - tracker.takeover_evidence(m))
                                 for m in topo.names if m not in decision.members}
                for m, left in remaining.items():
                    if left <= 0:
                        out.takeovers.append((dc, m, clock.real(now), clock.real(now - t.row_fresh)))
            schedule_round(dc, term, t0 + t.probe_interval, seq + 1)

        at(clock.real(t0 + t.probe_timeout), round_end)

    def starter(dc: str, term: Term) -> Callable[[], None]:
        return lambda: start_term(dc, term)

    for dc in topo.names:
        for term in terms[dc]:
            if term.start < horizon:
                at(term.start, starter(dc, term))
    while events:
        _, _, fn = heapq.heappop(events)
        fn()
    out.writable = {dc: merge(periods) for dc, periods in out.writable.items()}
    return out


def merge(periods: list[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for start, end in sorted(periods):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


TIMERS = Timers(probe_interval=0.5, probe_timeout=0.4, lease=1.5, row_fresh=1.5, max_drift=0.01,
                lock_delay=2.0, takeover_margin=0.0)


def three_dcs(timers: Timers = TIMERS) -> Topology:
    return Topology("c", (DcSpec("a"), DcSpec("b"), DcSpec("m")), timers=timers)


def isolate(dc: str, others: list[str], start: float, end: float) -> list[Cut]:
    return [Cut(x, y, start, end) for o in others for x, y in ((dc, o), (o, dc))]


def test_isolated_dc_is_fenced_before_the_majority_takes_over() -> None:
    topo = three_dcs()
    clocks = {"a": Clock(100.0, 1.0), "b": Clock(-7.0, 1.0), "m": Clock(3.0, 1.0)}
    out = simulate(topo, clocks, isolate("m", ["a", "b"], 10.0, 1e9), {}, seed=1, horizon=30.0,
                   fail_rate=0.0)
    assert out.violations() == []
    m_last = max(end for _, end in out.writable["m"])
    assert 10.0 < m_last < 10.0 + TIMERS.row_fresh + TIMERS.lease + 0.01
    first = min(real for x, m, real, _ in out.takeovers if m == "m" and x == "a")
    assert m_last < first < 10.0 + 1.05 * (TIMERS.lease + 3 * TIMERS.row_fresh + TIMERS.probe_timeout) + 1.0
    assert {m for _, m, _, _ in out.takeovers} == {"m"}
    assert out.writable["a"][-1][1] > 29.0 and len(out.writable["a"]) == 1


def test_non_transitive_partition_never_allows_takeover() -> None:
    topo = three_dcs()
    clocks = {dc: Clock(0.0, 1.0) for dc in "abm"}
    cuts = [Cut("a", "m", 5.0, 1e9), Cut("m", "a", 5.0, 1e9)]
    out = simulate(topo, clocks, cuts, {}, seed=2, horizon=30.0, fail_rate=0.0)
    assert out.takeovers == []
    assert all(out.writable[dc][-1][1] > 29.0 for dc in "abm")


def test_the_model_catches_a_too_short_takeover_after() -> None:
    topo = three_dcs()
    found = []
    for seed in range(20):
        clocks = {dc: Clock(0.0, 1.0) for dc in "abm"}
        out = simulate(topo, clocks, isolate("m", ["a", "b"], 10.0 + seed * 0.037, 1e9), {}, seed=seed,
                       horizon=20.0, fail_rate=0.0, takeover_after=TIMERS.lease)
        found += out.violations()
    assert found


@st.composite
def worlds(draw: st.DrawFn) -> tuple[Topology, dict[str, Clock], list[Cut], dict[str, list[float]], int]:
    n = draw(st.integers(3, 5))
    names = [f"d{i}" for i in range(n)]
    drift = draw(st.sampled_from([0.0, 0.01, 0.05]))
    timers = Timers(probe_interval=0.5, probe_timeout=0.4, lease=1.5, row_fresh=1.5, max_drift=drift,
                    lock_delay=2.0, takeover_margin=0.0)
    specs = tuple(DcSpec(x, weight=draw(st.integers(1, 3)), witness=draw(st.booleans())) for x in names)
    topo = Topology("c", specs, timers=timers, tie_breaker=draw(st.none() | st.sampled_from(names)))
    clocks = {x: Clock(draw(st.floats(-1e3, 1e3)), draw(st.floats(1 - drift, 1 + drift))) for x in names}
    cuts = []
    for _ in range(draw(st.integers(0, 3))):  # partitions: groups cut both ways from each other
        groups = {x: draw(st.integers(0, 2)) for x in names}
        start = draw(st.floats(0.0, 20.0))
        end = start + draw(st.floats(0.2, 15.0))
        cuts += [Cut(a, b, start, end) for a in names for b in names if groups[a] != groups[b]]
    for _ in range(draw(st.integers(0, 4))):  # one-way cuts
        a, b = draw(st.sampled_from(names)), draw(st.sampled_from(names))
        start = draw(st.floats(0.0, 20.0))
        cuts.append(Cut(a, b, start, start + draw(st.floats(0.2, 15.0))))
    changes = {x: [draw(st.floats(1.0, 20.0))] for x in names if draw(st.integers(0, 4)) == 0}
    return topo, clocks, cuts, changes, draw(st.integers(0, 2**32))


@given(worlds(), st.sampled_from([0.0, 0.1, 0.4]))
def test_takeover_never_overlaps_the_taken_over_writable_period(
    world: tuple[Topology, dict[str, Clock], list[Cut], dict[str, list[float]], int], fail_rate: float,
) -> None:
    topo, clocks, cuts, changes, seed = world
    out = simulate(topo, clocks, cuts, changes, seed, horizon=30.0, fail_rate=fail_rate)
    assert out.violations() == []
