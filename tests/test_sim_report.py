"""The renderer draws any well-formed history, including one recorded by the lab."""

from __future__ import annotations

import io
import os

from sim.cli import main
from sim.history import meta_event, read_jsonl, write_jsonl
from sim.report.render import render_html, render_png
from sim.report.timeline import build
from sim.world.runs import explore_topology

TOPO = explore_topology(3)


def lab_history() -> list[dict[str, object]]:
    meta = meta_event(TOPO, None, "lab", {"dc1": 1, "dc2": 1, "dc3": 1})
    ev: list[dict[str, object]] = [meta]
    for dc in ("dc1", "dc2", "dc3"):
        ev.append({"t": 1.0, "kind": "replica", "dc": dc, "replica": f"{dc}-1", "role": "leader",
                   "state": "writable", "allowed": True, "token": 4, "reason": None})
    ev.append({"t": 10.0, "kind": "fault", "phase": "start", "id": 1, "fault": "isolate",
               "description": "isolate dc1", "dcs": ["dc1"], "links": [["dc1", "dc2"]]})
    for a, b in (("dc1", "dc2"), ("dc2", "dc1"), ("dc1", "dc3"), ("dc3", "dc1")):
        ev.append({"t": 10.0, "kind": "link", "from": a, "to": b, "up": False})
    ev.append({"t": 11.2, "kind": "replica", "dc": "dc1", "replica": "dc1-1", "role": "leader",
               "state": "fenced", "allowed": False, "token": None, "reason": "not-in-quorum"})
    for a, b in (("dc1", "dc2"), ("dc2", "dc1"), ("dc1", "dc3"), ("dc3", "dc1")):
        ev.append({"t": 40.0, "kind": "link", "from": a, "to": b, "up": True})
    ev.append({"t": 40.0, "kind": "fault", "phase": "end", "id": 1, "fault": "isolate",
               "description": "isolate dc1", "dcs": ["dc1"], "links": []})
    ev.append({"t": 43.0, "kind": "replica", "dc": "dc1", "replica": "dc1-1", "role": "leader",
               "state": "writable", "allowed": True, "token": 9, "reason": None})
    ev.append({"t": 60.0, "kind": "end"})
    return ev


def test_timeline_metrics_from_a_lab_history() -> None:
    tl = build(lab_history())
    m = tl.metrics["dc1"]
    assert [round(x, 3) for x in m.fence_latencies] == [1.2]
    assert [round(x, 3) for x in m.rejoin_latencies] == [3.0]
    assert m.peak_writable == 1
    assert [s.state for s in tl.lanes["dc1"]] == ["fenced", "writable", "fenced", "writable"]
    assert tl.lanes["dc1"][-1].label == "9"
    assert tl.faults == [(10.0, 40.0, "isolate dc1")]
    assert set(tl.pair_strips) == {("dc1", "dc2"), ("dc1", "dc3")}


def test_cli_check_and_report_on_a_recorded_history(tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "lab-run.jsonl")
    with open(path, "w", encoding="utf-8") as fh:
        write_jsonl(lab_history(), fh)
    with open(path, encoding="utf-8") as fh:
        assert len(list(read_jsonl(fh))) == len(lab_history())
    out = io.StringIO()
    assert main(["check", path], out, io.StringIO()) == 0
    out_dir = os.path.join(str(tmp_path), "rep")
    assert main(["report", path, "--out", out_dir], io.StringIO(), io.StringIO()) == 0
    with open(os.path.join(out_dir, "lab-run.html"), encoding="utf-8") as fh:
        html = fh.read()
    assert "data:image/png;base64," in html and "<td>dc1</td>" in html
    assert "http://" not in html and "https://" not in html, "self-contained: nothing loaded from outside"


def _belief(t: float, replica: str, term: int | None, until: float | None) -> dict[str, object]:
    return {"t": t, "kind": "global", "lock": "L", "dc": replica.split("-")[0], "replica": replica,
            "holder": f"{replica}#0", "term": term, "until": until}


def test_global_lock_lane_is_the_believed_holdings() -> None:
    """Renewals extend a holding; a belief ends at its own `until` (no event needed) or at the
    claimant's next event; the HTML lists tenures (renewals merged) and the PNG grows a lane."""
    ev = lab_history()[:-1]
    ev += [_belief(2.0, "dc1-1", 1, 4.0), _belief(3.0, "dc1-1", 1, 5.0),  # renewal
           _belief(20.0, "dc2-1", 2, 30.0), _belief(25.0, "dc2-1", None, None),  # released early
           {"t": 60.0, "kind": "end"}]
    tl = build(ev)
    assert [(s.start, s.end, s.state, s.label) for s in tl.global_lanes["L"]] == [
        (2.0, 3.0, "dc1", "dc1-1 t1"), (3.0, 5.0, "dc1", "dc1-1 t1"), (20.0, 25.0, "dc2", "dc2-1 t2")]
    without = render_png(build(lab_history()))
    html = render_html(tl, render_png(tl))
    assert "<td>L</td><td>2.000</td><td>5.000</td><td>dc1</td><td>dc1-1 t1</td>" in html
    assert "<td>L</td><td>20.000</td><td>25.000</td><td>dc2</td>" in html
    assert "Global locks" not in render_html(build(lab_history()), without)
