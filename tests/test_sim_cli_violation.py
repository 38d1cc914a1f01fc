"""A violation found by `python -m sim run` is printed with its invariant, the seed and the
exact replay command, and the run exits 1 with the JSON summary still on the LAST line.

The scenario is the shipped isolate-one; the world run is replaced by one that returns the
real history plus a `one-writable-per-dc` violation (the shipped core does not break an
invariant under any schedule a scenario file may express, so one is injected here).
"""

from __future__ import annotations

import io
import json
from dataclasses import replace
from typing import Any

import pytest

import sim.cli as cli
import sim.world.runs as runs
from sim.checker import Violation
from sim.cli import main
from sim.scenario import Scenario, load_scenario
from sim.world.world import RunResult

SCENARIO = "sim/scenarios/isolate-one.yaml"


def _with_violation(real: Any) -> Any:
    def run(scenario: Scenario, seed: int, record: bool = True) -> RunResult:
        result: RunResult = real(scenario, seed, record)
        broken = Violation(42.5, "one-writable-per-dc", "dc1-1 and dc1-2 both writable", "dc1")
        result.violations.append(broken)
        result.history.append(broken.to_event())
        return result
    return run


def test_violation_prints_invariant_seed_and_replay_and_exits_1(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setattr(runs, "run_scenario", _with_violation(runs.run_scenario))
    real_load = load_scenario
    monkeypatch.setattr(cli, "load_scenario", lambda path: replace(real_load(path), duration=40.0))
    out, err = io.StringIO(), io.StringIO()
    report = str(tmp_path / "r")
    code = main(["run", SCENARIO, "--seed", "7", "--report", report], out, err)
    lines = out.getvalue().strip().splitlines()
    assert code == 1
    assert "VIOLATION one-writable-per-dc at t=42.500s in dc1: dc1-1 and dc1-2 both writable" in lines
    assert f"  seed 7; replay: python -m sim run {SCENARIO} --seed 7 --report {report}" in lines
    summary = json.loads(lines[-1])
    assert summary["runs"] == 1 and summary["violations"] == 1
    html = (tmp_path / "r" / "isolate-one-seed7.html").read_text(encoding="utf-8")
    assert "one-writable-per-dc" in html


@pytest.mark.parametrize("argv", [
    ["run", SCENARIO, "--report", "{file}/sub"],
    ["run", SCENARIO, "--history", "{missing}/h.jsonl"],
    ["explore", "--runs", "1", "--duration", "10", "--report", "{file}/sub"],
])
def test_unwritable_output_fails_fast_with_exit_2_and_one_line(argv: list[str], tmp_path: Any) -> None:
    """A report/history path that cannot be written is refused before anything runs."""
    blocker = tmp_path / "a-file"
    blocker.write_text("x", encoding="utf-8")
    args = [a.format(file=blocker, missing=tmp_path / "missing") for a in argv]
    out, err = io.StringIO(), io.StringIO()
    assert main(args, out, err) == 2
    assert out.getvalue() == ""
    assert err.getvalue().startswith("cannot write output: ") and err.getvalue().count("\n") == 1
