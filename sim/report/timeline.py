"""From a history (sim or lab) to what the report draws and tabulates. Pure; no matplotlib.

- `lanes`: per DC, consecutive `Segment`s of the DC-level state: ``writable`` (some replica
  says yes; the token is kept), ``catching-up``, ``fenced``, ``down`` (no replica running),
  ``starting`` (every replica reports state ``starting``: a process not answering yet,
  whatever its role).
  Before a DC's first replica event its lane is ``fenced``.
- `pair_strips`: per unordered DC pair that ever changed, segments of ``up`` (both ways),
  ``oneway`` (one direction cut), ``down`` (both cut) or ``degraded`` (delay/loss).
- `faults`: (start, end, description) bands; `violations`: (t, invariant, dc).
- `global_lanes`: per global lock (simulator histories only), the `Segment`s during which
  some claimant believed it held the lock: ``state`` is the claimant's DC, ``label`` is
  ``"<replica> t<term>"``; a segment ends at the claimant's own ``until`` or at its next
  ``global`` event, whichever is first. Segments of different claimants may overlap only
  if the history also carries a ``global-one-holder`` violation.
- `metrics`: per DC fence latency (left every quorum clique in ground truth -> no replica
  writable), rejoin latency (back in a quorum clique -> writable again), leader changes,
  and the peak number of simultaneously writable replicas.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sim.history import Event, topology_from_json
from sim.world.truth import quorum_members


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    state: str
    label: str = ""


@dataclass
class DcMetrics:
    fence_latencies: list[float] = field(default_factory=list)
    unfenced_cuts: int = 0
    """Times the DC left every quorum clique while writable and was still writable at the end."""
    rejoin_latencies: list[float] = field(default_factory=list)
    leader_changes: int = 0
    peak_writable: int = 0
    writes_accepted: int = 0
    writes_rejected: int = 0


@dataclass
class Timeline:
    dcs: tuple[str, ...]
    witnesses: frozenset[str]
    t_end: float
    meta: dict[str, Any]
    lanes: dict[str, list[Segment]]
    pair_strips: dict[tuple[str, str], list[Segment]]
    faults: list[tuple[float, float, str]]
    violations: list[tuple[float, str, str | None, str]]
    metrics: dict[str, DcMetrics]
    quiet_at: float | None = None
    global_lanes: dict[str, list[Segment]] = field(default_factory=dict)


def _dc_state(reps: dict[str, dict[str, Any]]) -> tuple[str, str]:
    writable = [r for r in reps.values() if r.get("allowed")]
    if writable:
        tokens = sorted({str(r.get("token")) for r in writable})
        return "writable", ",".join(tokens)
    if any(r.get("state") == "catching-up" for r in reps.values()):
        return "catching-up", ""
    if reps and all(r.get("state") == "starting" for r in reps.values()):
        return "starting", ""
    if reps and all(r.get("role") in ("down", "paused") for r in reps.values()):
        return "down", ""
    return "fenced", ""


def _pair_state(down: set[tuple[str, str]], degraded: set[tuple[str, str]], a: str, b: str) -> str:
    ab, ba = (a, b) in down, (b, a) in down
    if ab and ba:
        return "down"
    if ab or ba:
        return "oneway"
    if (a, b) in degraded or (b, a) in degraded:
        return "degraded"
    return "up"


def build(events: list[Event]) -> Timeline:
    if not events or events[0]["kind"] != "meta":
        raise ValueError("a history starts with a meta event")
    meta = events[0]
    topo = topology_from_json(meta["topology"], meta.get("timers"))
    dcs = topo.names
    witnesses = frozenset(d.name for d in topo.datacenters if d.witness)
    t_end = max(float(e["t"]) for e in events)
    reps: dict[str, dict[str, dict[str, Any]]] = {dc: {} for dc in dcs}
    lane_state: dict[str, tuple[str, str, float]] = {dc: ("fenced", "", 0.0) for dc in dcs}
    lanes: dict[str, list[Segment]] = {dc: [] for dc in dcs}
    down: set[tuple[str, str]] = set()
    degraded: set[tuple[str, str]] = set()
    pair_state: dict[tuple[str, str], tuple[str, float]] = {}
    strips: dict[tuple[str, str], list[Segment]] = {}
    open_faults: dict[int, tuple[float, str]] = {}
    faults: list[tuple[float, float, str]] = []
    violations: list[tuple[float, str, str | None, str]] = []
    metrics = {dc: DcMetrics() for dc in dcs}
    leader: dict[str, str | None] = {dc: None for dc in dcs}
    members = frozenset(dcs)
    lost_at: dict[str, float] = {}
    healed_at: dict[str, float] = {}
    quiet_at: float | None = None
    beliefs: dict[tuple[str, str], tuple[float, float, str, str]] = {}
    """(lock, holder) -> (since, until, dc, label) of a claimant that believes it holds."""
    global_lanes: dict[str, list[Segment]] = {}

    def close_belief(key: tuple[str, str], t: float) -> None:
        belief = beliefs.pop(key, None)
        if belief is not None:
            since, until, dc, label = belief
            end = min(until, t)
            if end > since:
                global_lanes.setdefault(key[0], []).append(Segment(since, end, dc, label))

    def lane_update(dc: str, t: float) -> None:
        state, label = _dc_state(reps[dc])
        old_state, old_label, since = lane_state[dc]
        if (state, label) != (old_state, old_label):
            if t > since:
                lanes[dc].append(Segment(since, t, old_state, old_label))
            lane_state[dc] = (state, label, t)
        if state == "writable":
            if dc in healed_at:
                metrics[dc].rejoin_latencies.append(t - healed_at.pop(dc))
        elif dc in lost_at:
            metrics[dc].fence_latencies.append(t - lost_at.pop(dc))

    for event in events[1:]:
        t = float(event["t"])
        kind = event["kind"]
        if kind == "replica":
            dc = str(event["dc"])
            reps[dc][str(event["replica"])] = event
            if event.get("role") == "leader" and leader[dc] != event["replica"]:
                if leader[dc] is not None:
                    metrics[dc].leader_changes += 1
                leader[dc] = str(event["replica"])
            count = sum(1 for r in reps[dc].values() if r.get("allowed"))
            metrics[dc].peak_writable = max(metrics[dc].peak_writable, count)
            lane_update(dc, t)
        elif kind == "link":
            link = (str(event["from"]), str(event["to"]))
            (down.discard if event.get("up") else down.add)(link)
            (degraded.add if event.get("delay") or event.get("loss") else degraded.discard)(link)
            a, b = sorted(link)
            new = _pair_state(down, degraded, a, b)
            old, since = pair_state.get((a, b), ("up", 0.0))
            if new != old:
                if t > since:
                    strips.setdefault((a, b), []).append(Segment(since, t, old))
                pair_state[(a, b)] = (new, t)
            now_members = quorum_members(topo, down)
            for dc in dcs:
                writable = lane_state[dc][0] == "writable"
                if dc in members and dc not in now_members:
                    healed_at.pop(dc, None)
                    if writable:
                        lost_at[dc] = t
                elif dc not in members and dc in now_members:
                    lost_at.pop(dc, None)
                    if not writable and dc not in witnesses:
                        healed_at[dc] = t
            members = now_members
        elif kind == "fault":
            if event.get("phase") == "start":
                open_faults[int(event["id"])] = (t, str(event.get("description", event.get("fault"))))
            else:
                start = open_faults.pop(int(event["id"]), None)
                if start is not None:
                    faults.append((start[0], t, start[1]))
        elif kind == "write":
            m = metrics[str(event["dc"])]
            if event.get("accepted"):
                m.writes_accepted += 1
            else:
                m.writes_rejected += 1
        elif kind == "violation":
            violations.append((t, str(event["invariant"]), event.get("dc"), str(event.get("detail", ""))))
        elif kind == "global":
            key = (str(event["lock"]), str(event["holder"]))
            global_lanes.setdefault(key[0], [])
            close_belief(key, t)
            until = event.get("until")
            if until is not None and float(until) > t:
                label = f"{event['replica']} t{event.get('term')}"
                beliefs[key] = (t, float(until), str(event["dc"]), label)
        elif kind == "quiet":
            quiet_at = t
    for dc in dcs:
        state, label, since = lane_state[dc]
        lanes[dc].append(Segment(since, t_end, state, label))
        if dc in lost_at:
            metrics[dc].unfenced_cuts += 1
    for pair, (state, since) in pair_state.items():
        strips.setdefault(pair, []).append(Segment(since, t_end, state))
    for began, desc in open_faults.values():
        faults.append((began, t_end, desc))
    faults.sort()
    for key in list(beliefs):
        close_belief(key, t_end)
    for segs in global_lanes.values():
        segs.sort(key=lambda seg: (seg.start, seg.end, seg.state))
    return Timeline(dcs, witnesses, t_end, meta, lanes, strips, faults, violations, metrics, quiet_at,
                    global_lanes)
