"""Scenario files: every shipped one is valid and keeps every SAFETY invariant; bad files get
`file:line: path: message` errors and exit 2; the same seed gives a byte-identical log."""

from __future__ import annotations

import functools
import glob
import io
import json
import os

import pytest

from sim.checker import SAFETY_INVARIANTS
from sim.cli import main
from sim.history import dumps
from sim.scenario import ScenarioError, load_scenario, load_scenario_text, scenario_dir
from sim.world.runs import run_scenario
from sim.world.world import RunResult

SCENARIOS = sorted(glob.glob(os.path.join(scenario_dir(), "*.yaml")))
REQUIRED = {
    "isolate-one", "one-way", "majorities-ring", "bridge", "flapping", "leader-crash-during-partition",
    "paused-leader", "even-split-with-witness", "rolling-partitions",
}


@functools.cache
def run(name: str, seed: int = 1) -> RunResult:
    """Each shipped scenario runs once per test session (seed 1) and is shared by the tests."""
    return run_scenario(load_scenario(os.path.join(scenario_dir(), name + ".yaml")), seed=seed)


def test_every_required_scenario_ships_and_loads() -> None:
    names = {load_scenario(path).name for path in SCENARIOS}
    assert names >= REQUIRED


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: os.path.basename(p))
def test_shipped_scenario_keeps_safety(path: str) -> None:
    result = run(os.path.basename(path)[: -len(".yaml")])
    safety = [v for v in result.violations if v.invariant in SAFETY_INVARIANTS]
    assert safety == [], f"replay: python -m sim run {path} --seed 1"
    assert any(e["kind"] == "replica" and e["allowed"] for e in result.history)


def _writable(history: list[dict[str, object]], dc: str, t: float) -> bool:
    state: dict[str, bool] = {}
    for e in history:
        if float(e["t"]) > t:  # type: ignore[arg-type]
            break
        if e["kind"] == "replica" and e["dc"] == dc:
            state[str(e["replica"])] = bool(e["allowed"])
    return any(state.values())


def test_isolated_dc_fences_and_rejoins() -> None:
    result = run("isolate-one")
    h = result.history
    assert _writable(h, "dc1", 29.0)
    assert not _writable(h, "dc1", 35.0) and not _writable(h, "dc1", 85.0)
    assert _writable(h, "dc2", 60.0)
    assert _writable(h, "dc1", 150.0), "dc1 rejoins after the heal"


def test_paused_leader_loses_to_a_higher_token_and_its_late_write_is_rejected() -> None:
    result = run("paused-leader")
    tokens = [e["token"] for e in result.history
              if e["kind"] == "replica" and e["dc"] == "dc1" and e["allowed"]]
    assert len(set(tokens)) >= 2 and tokens == sorted(tokens)
    assert result.stats["rejected_writes"] >= 1, "the paused application's late write must be rejected"
    assert not [v for v in result.violations if v.invariant in SAFETY_INVARIANTS]


def test_majorities_ring_fences_everyone() -> None:
    result = run("majorities-ring")
    assert not any(_writable(result.history, dc, 80.0) for dc in ("dc1", "dc2", "dc3", "dc4", "dc5"))


def test_same_seed_gives_byte_identical_log_and_another_seed_differs() -> None:
    scenario = load_scenario(os.path.join(scenario_dir(), "flapping.yaml"))
    short = type(scenario)(**{**scenario.__dict__, "duration": 60.0})
    logs = ["\n".join(dumps(e) for e in run_scenario(short, seed=s).history) for s in (5, 5, 6)]
    assert logs[0] == logs[1]
    assert logs[0] != logs[2]


BAD = """name: bad
topology:
  cluster: sim
  datacenters: {dc1: {}, dc2: {}}
duration: 100
faults:
  - {at: 10, kind: isolate, dc: dc9}
  - {at: 10, kind: explode, dc: dc1}
  - {at: 10, kind: cut, between: [dc1]}
"""


def test_bad_scenario_reports_every_problem_with_file_and_line() -> None:
    with pytest.raises(ScenarioError) as info:
        load_scenario_text(BAD, "bad.yaml")
    lines = info.value.lines
    assert any(line.startswith("bad.yaml:7: faults[0].dc: unknown DC 'dc9'") for line in lines), lines
    assert any(line.startswith("bad.yaml:8: faults[1].kind:") for line in lines), lines
    assert any(line.startswith("bad.yaml:9: faults[2].between: must name exactly two DCs") for line in lines)


def test_bad_topology_section_is_reported_with_its_path() -> None:
    text = BAD.replace("dc2: {}", "dc2: {weight: 0}")
    with pytest.raises(ScenarioError) as info:
        load_scenario_text(text, "bad.yaml")
    assert info.value.lines[0].startswith("bad.yaml:4: topology.datacenters.dc2.weight: must be a positive")


def test_cli_exit_2_on_invalid_scenario(tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "bad.yaml")
    with open(path, "w") as fh:
        fh.write(BAD)
    out, err = io.StringIO(), io.StringIO()
    assert main(["run", path, "--seed", "1"], out, err) == 2
    assert err.getvalue().startswith(f"{path}:")


def test_cli_run_prints_summary_json_last_and_writes_report(tmp_path: object) -> None:
    out, err = io.StringIO(), io.StringIO()
    path = os.path.join(scenario_dir(), "one-way.yaml")
    report = os.path.join(str(tmp_path), "rep")
    code = main(["run", path, "--seed", "2", "--report", report], out, err)
    last = json.loads(out.getvalue().strip().splitlines()[-1])
    assert set(last) == {"runs", "violations", "simulated_s", "wall_s", "speed"}
    assert last["runs"] == 1 and last["simulated_s"] == 200.0
    assert code == (1 if last["violations"] else 0)
    with open(os.path.join(report, "one-way-seed2.html")) as fh:
        html = fh.read()
    assert "data:image/png;base64," in html and "fence latency" in html
    with open(os.path.join(report, "one-way-seed2.png"), "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"


SHORT = """name: short
topology:
  cluster: sim
  datacenters: {dc1: {}, dc2: {}, dc3: {}}
duration: 60
faults:
  - {at: 20, kind: flap, between: [dc1, dc3], period: 2s, for: 20}
  - {at: 25, kind: crash, dc: dc2, replica: leader, for: 10}
"""


def test_same_seed_is_byte_identical_across_processes_and_hash_seeds(tmp_path: object) -> None:
    import subprocess
    import sys

    path = os.path.join(str(tmp_path), "short.yaml")
    with open(path, "w") as fh:
        fh.write(SHORT)
    logs = []
    for hash_seed in ("1", "2"):
        log = os.path.join(str(tmp_path), f"h{hash_seed}.jsonl")
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        subprocess.run([sys.executable, "-m", "sim", "run", path, "--seed", "9", "--history", log],
                       env=env, check=False, capture_output=True)
        with open(log, "rb") as fh:
            logs.append(fh.read())
    assert logs[0] == logs[1] and logs[0].count(b"\n") > 20


def test_global_lock_scenario_records_holders_and_hands_over_with_higher_terms() -> None:
    result = run("global-lock-partition")
    beliefs = [e for e in result.history if e["kind"] == "global"]
    assert beliefs, "the DC leaders contend for the global lock"
    tenures: list[tuple[str, int]] = []
    for e in beliefs:
        if e["term"] is not None and (not tenures or tenures[-1] != (e["holder"], e["term"])):
            tenures.append((str(e["holder"]), int(e["term"])))
    terms = [term for _, term in tenures]
    assert len(set(terms)) >= 2, "the partition moves the lock at least once"
    assert terms == sorted(terms)
    assert not [v for v in result.violations if v.invariant.startswith("global-")]


def test_admin_fence_through_the_follower_survives_the_leaders_crash() -> None:
    result = run("admin-fence-failover")
    h = result.history
    assert not [v for v in result.violations if v.invariant in SAFETY_INVARIANTS]
    applied = [float(e["t"]) for e in h if e["kind"] == "admin-fence" and e["on"]]  # type: ignore[arg-type]
    assert applied and 30.0 <= applied[0] < 31.0
    assert _writable(h, "dc1", 29.0)
    assert not any(_writable(h, "dc1", t) for t in (32.0, 45.0, 70.0, 89.0)), "fenced through the fail-over"
    leaders = {e["replica"] for e in h if e["kind"] == "replica" and e["dc"] == "dc1"
               and e.get("role") == "leader" and 30.0 < float(e["t"]) < 90.0}  # type: ignore[arg-type]
    assert len(leaders) == 2, "both replicas led dc1 while it was fenced"
    assert _writable(h, "dc1", 150.0), "writable again after the unfence"
