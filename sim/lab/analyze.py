"""Reading a lab history: the simulator's checker, latencies, and the report.

`writable_timeline(history)` replays ``replica`` events into, per DC, the list of
(t, writable) changes (a DC is writable while any of its replicas says yes).
`fault_latencies` measures, for every link fault, per DC cut off from the quorum:
fence latency (fault start -> the DC has no writable replica) and rejoin latency
(fault end -> writable again); and counts false fences (a DC still in a quorum clique,
writable at the fault start, that became unwritable while the fault lasted).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    """DCs cut off from the quorum that were still writable when the fault ended."""


def fault_latencies(history: Sequence[Event]) -> Latencies:
    meta = history[0]
    topo = topology_from_json(meta["topology"], meta.get("timers"))
    voters = [d.name for d in topo.datacenters if not d.witness]
    timeline = writable_timeline(history)
    starts: dict[int, Event] = {}
    out = Latencies()
    for ev in history:
        if ev["kind"] != "fault" or ev.get("fault") not in LINK_FAULTS:
            continue
        if ev["phase"] == "start":
            starts[int(ev["id"])] = ev
            continue
        start = starts.pop(int(ev["id"]), None)
        if start is None or ev.get("fault") == "flap":
            continue
        t0, t1 = float(start["t"]), float(ev["t"])
        down = {(str(a), str(b)) for a, b in start.get("links", [])}
        quorum = quorum_members(topo, down)
        for dc in voters:
            line = timeline.get(dc, [])
            if not _state_at(line, t0):
                continue
            if dc in quorum:
                if _first(line, t0, False, t1) is not None:
                    out.false_fences += 1
                continue
            fenced = _first(line, t0, False, t1)
            if fenced is None:
                out.unfenced.append(dc)
                continue
            out.fence.append(fenced - t0)
            back = _first(line, t1, True)
            if back is not None:
                out.rejoin.append(back - t1)
    return out


def check(history: Sequence[Event]) -> list[Violation]:
    return check_history(history)


def render(history: Sequence[Event], out_dir: Path) -> str | None:
    """Draw the report with the simulator's renderer (sim.report), if it is installed.
    Returns a path of what was written, or None with no renderer available."""
    try:
        mod: Any = importlib.import_module("sim.report")
    except ImportError:
        return None
    for name in ("render_report", "render", "write_report"):
        fn = getattr(mod, name, None)
        if callable(fn):
            result = fn(list(history), out_dir)
            return str(result) if result is not None else str(out_dir)
    return None


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]
