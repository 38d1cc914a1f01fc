"""Reading a lab history: the simulator's checker, latencies, and the report.

`writable_timeline(history)` replays ``replica`` events into, per DC, the list of
(t, writable) changes (a DC is writable while any of its replicas says yes).
`fault_latencies` measures, for every link fault, per DC cut off from the quorum:
fence latency (fault start -> the DC has no writable replica) and rejoin latency
(fault end -> writable again); and counts false fences (a DC still in a quorum clique,
writable at the fault start, that became unwritable while the fault lasted).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from coordinator.core.timers import derive
from coordinator.core.topology import Topology
from sim.checker import Violation, check_history
from sim.history import Event, topology_from_json
from sim.world.truth import quorum_members

LINK_FAULTS = {"cut", "partition", "ring", "bridge", "isolate", "flap"}


def writable_timeline(history: Sequence[Event]) -> dict[str, list[tuple[float, bool]]]:
    allowed: dict[str, set[str]] = {}
    out: dict[str, list[tuple[float, bool]]] = {}
    for ev in history:
        if ev["kind"] != "replica":
            continue
        dc = str(ev["dc"])
        now = allowed.setdefault(dc, set())
        before = bool(now)
        if ev.get("allowed"):
            now.add(str(ev["replica"]))
        else:
            now.discard(str(ev["replica"]))
        if bool(now) != before or dc not in out:
            out.setdefault(dc, []).append((float(ev["t"]), bool(now)))
    return out


def _state_at(timeline: list[tuple[float, bool]], t: float) -> bool:
    state = False
    for when, value in timeline:
        if when > t:
            break
        state = value
    return state


def _first(
    timeline: list[tuple[float, bool]], after: float, value: bool, before: float | None = None
) -> float | None:
    if _state_at(timeline, after) == value:
        return after
    for when, v in timeline:
        if when > after and v == value:
            return when if before is None or when <= before else None
    return None


@dataclass
class Latencies:
    fence: list[float] = field(default_factory=list)
    rejoin: list[float] = field(default_factory=list)
    false_fences: int = 0
    unfenced: list[str] = field(default_factory=list)
    """DCs cut off from every quorum clique for longer than max_fence_latency that stayed writable."""


def _membership(history: Sequence[Event], topo: Topology) -> dict[str, list[tuple[float, bool]]]:
    """Per DC, (t, in a quorum clique by ground-truth links) changes, starting (0, True)."""
    down: set[tuple[str, str]] = set()
    member = {name: True for name in topo.names}
    out: dict[str, list[tuple[float, bool]]] = {name: [(0.0, True)] for name in topo.names}
    for ev in history:
        if ev["kind"] != "link":
            continue
        link = (str(ev["from"]), str(ev["to"]))
        if ev.get("up"):
            down.discard(link)
        else:
            down.add(link)
        q = quorum_members(topo, down)
        for name in topo.names:
            if (name in q) != member[name]:
                member[name] = name in q
                out[name].append((float(ev["t"]), name in q))
    return out


def _fault_windows(history: Sequence[Event], link: bool) -> list[tuple[float, float]]:
    starts: dict[int, float] = {}
    out: list[tuple[float, float]] = []
    end_t = float(history[-1]["t"]) if history else 0.0
    for ev in history:
        if ev["kind"] != "fault" or (ev.get("fault") in LINK_FAULTS) != link:
            continue
        if ev["phase"] == "start":
            starts[int(ev["id"])] = float(ev["t"])
        elif int(ev["id"]) in starts:
            out.append((starts.pop(int(ev["id"])), float(ev["t"])))
    out += [(t, end_t) for t in starts.values()]
    return out


def _inside(windows: list[tuple[float, float]], t: float) -> bool:
    return any(a <= t <= b for a, b in windows)


def fault_latencies(history: Sequence[Event]) -> Latencies:
    """Latencies per cut-off episode (ground truth from ``link`` events).

    An episode of DC d runs from the moment d leaves every quorum clique until it is in
    one again. Fence latency: episode start -> d has no writable replica (only if d was
    writable at the start and fenced within the episode). Rejoin latency: episode end ->
    d writable again (only for episodes where d fenced). A false fence: d stops being
    writable while a link fault and no process fault is active and d has been in a quorum
    clique for at least ``lease + row_fresh + probe_interval``.
    """
    meta = history[0]
    topo = topology_from_json(meta["topology"], meta.get("timers"))
    timers = topo.timers
    grace = timers.lease + timers.row_fresh + timers.probe_interval
    must_fence = derive(timers).max_fence_latency
    voters = [d.name for d in topo.datacenters if not d.witness]
    timeline = writable_timeline(history)
    membership = _membership(history, topo)
    link_windows = _fault_windows(history, link=True)
    proc_windows = _fault_windows(history, link=False)
    end_t = float(history[-1]["t"])
    out = Latencies()
    for dc in voters:
        line = timeline.get(dc, [])
        changes = membership[dc]
        for i, (t_cut, member) in enumerate(changes):
            if member:
                continue
            t_heal = changes[i + 1][0] if i + 1 < len(changes) else None
            if not _state_at(line, t_cut):
                continue
            fenced = _first(line, t_cut, False, t_heal)
            if fenced is None:
                if (t_heal if t_heal is not None else end_t) - t_cut > must_fence:
                    out.unfenced.append(dc)
                continue
            out.fence.append(fenced - t_cut)
            if t_heal is not None:
                back = _first(line, t_heal, True)
                if back is not None:
                    out.rejoin.append(back - t_heal)
        for (_, was), (t_fall, now) in itertools.pairwise(line):
            if not (was and not now) or not _inside(link_windows, t_fall) or _inside(proc_windows, t_fall):
                continue
            since = max((t for t, m in changes if t <= t_fall), default=0.0)
            if _state_member(changes, t_fall) and t_fall - since >= grace:
                out.false_fences += 1
    return out


def _state_member(changes: list[tuple[float, bool]], t: float) -> bool:
    state = True
    for when, value in changes:
        if when > t:
            break
        state = value
    return state


def check(history: Sequence[Event]) -> list[Violation]:
    return check_history(history)


def render(
    history: Sequence[Event], out_dir: Path, name: str = "report", violations: Sequence[Violation] = (),
) -> tuple[str, str]:
    """Draw the report with the simulator's renderer: writes ``<name>.html`` (self-contained)
    and ``<name>.png`` into `out_dir`, next to the history; returns (html_path, png_path).
    The checker's `violations` are folded in as ``violation`` events (red marks), as the
    simulator records them; the history file itself is not changed."""
    from sim.report import report_history

    events = list(history)
    if violations:
        head, rest = events[:1], events[1:] + [v.to_event() for v in violations]
        events = head + sorted(rest, key=lambda e: float(e["t"]))
    return report_history(events, str(out_dir), name)


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]
