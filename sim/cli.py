"""`python -m sim`: run a scenario, explore random fault schedules, check or draw a history.

    python -m sim run SCENARIO.yaml --seed N [--report DIR] [--history FILE]
    python -m sim explore --dcs N --runs R --duration SECONDS --seed S [--report DIR] [--jobs J]
    python -m sim check HISTORY.jsonl          # the same invariants over a recorded history
    python -m sim report HISTORY.jsonl --out DIR

Exit status: 0 every invariant held, 1 at least one broke, 2 bad input. `run` and
`explore` print as their LAST line one JSON object
``{"runs", "violations", "simulated_s", "wall_s", "speed"}`` (speed = simulated seconds per
wall second). Every violation is printed with its invariant, seed and replay command.
Explore run i uses seed S + i, so any run replays alone with ``--runs 1 --seed S+i``.
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing
import os
import shlex
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

from sim.history import HistoryError, load, write_jsonl
from sim.scenario import ScenarioError, load_scenario


def _tune_gc() -> None:
    """A simulation allocates millions of short-lived objects: the default generation-0
    threshold (700) runs the cyclic collector thousands of times per run for ~5% of the
    CPU. Freeze what is alive (modules, code) and collect less often (a few MB more)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def _summary(runs: int, violations: int, simulated: float, wall: float) -> str:
    return json.dumps({
        "runs": runs,
        "violations": violations,
        "simulated_s": round(simulated, 3),
        "wall_s": round(wall, 3),
        "speed": round(simulated / wall, 1) if wall > 0 else None,
    })


def _print_violations(out: TextIO, violations: Sequence[dict[str, Any]], seed: int, replay: str) -> None:
    for v in violations:
        where = f" in {v['dc']}" if v.get("dc") else ""
        out.write(f"VIOLATION {v['invariant']} at t={v['t']:.3f}s{where}: {v['detail']}\n")
        out.write(f"  seed {seed}; replay: {replay}\n")


def _violation_dicts(result: Any) -> list[dict[str, Any]]:
    return [{"t": v.t, "invariant": v.invariant, "detail": v.detail, "dc": v.dc} for v in result.violations]


def _unwritable(err: TextIO, report_dir: str | None, history_file: str | None = None) -> bool:
    """Create `report_dir` and check `history_file`'s directory BEFORE simulating, so a bad
    output path costs one line on stderr (exit 2), not a run followed by a traceback."""
    try:
        if report_dir:
            os.makedirs(report_dir, exist_ok=True)
            if not os.access(report_dir, os.W_OK):
                raise PermissionError(f"not writable: {report_dir!r}")
        if history_file:
            parent = os.path.dirname(os.path.abspath(history_file))
            if not os.path.isdir(parent) or not os.access(parent, os.W_OK):
                raise FileNotFoundError(f"no writable directory for {history_file!r}")
    except OSError as exc:
        err.write(f"cannot write output: {exc}\n")
        return True
    return False


def cmd_run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from sim.report import report_history
    from sim.world.runs import run_scenario

    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as exc:
        for line in exc.lines:
            err.write(line + "\n")
        return 2
    if _unwritable(err, args.report, args.history):
        return 2
    _tune_gc()
    started = time.perf_counter()
    result = run_scenario(scenario, args.seed)
    wall = time.perf_counter() - started
    if args.history:
        with open(args.history, "w", encoding="utf-8") as fh:
            write_jsonl(result.history, fh)
    replay = f"python -m sim run {shlex.quote(args.scenario)} --seed {args.seed}"
    if args.report:
        name = f"{scenario.name}-seed{args.seed}"
        html_path, _ = report_history(result.history, args.report, name)
        with open(os.path.join(args.report, name + ".jsonl"), "w", encoding="utf-8") as fh:
            write_jsonl(result.history, fh)
        out.write(f"report: {html_path}\n")
        replay += f" --report {shlex.quote(args.report)}"
    _print_violations(out, _violation_dicts(result), args.seed, replay)
    out.write(f"{scenario.name}: seed {args.seed}, {len(result.violations)} violations, "
              f"{result.events} events, {result.requests} Consul requests\n")
    out.write(_summary(1, len(result.violations), result.simulated_s, wall) + "\n")
    return 1 if result.violations else 0


def _explore_one(job: tuple[int, int, float, int, str | None, bool]) -> dict[str, Any]:
    dcs, seed, duration, replicas, report, first = job
    from sim.world.runs import run_explore

    result = run_explore(dcs, duration, seed, replicas, record=True)
    summary: dict[str, Any] = {
        "seed": seed,
        "violations": _violation_dicts(result),
        "simulated_s": result.simulated_s,
        "events": result.events,
    }
    if report and (result.violations or first):
        from sim.report import report_history

        name = f"explore-dcs{dcs}-seed{seed}"
        summary["report"], _ = report_history(result.history, report, name)
        with open(os.path.join(report, name + ".jsonl"), "w", encoding="utf-8") as fh:
            write_jsonl(result.history, fh)
    return summary


def _progress(err: TextIO, done: int, total: int, bad: int, started: float) -> None:
    if total <= 1 or not err.isatty():
        return
    width = 30
    filled = width * done // total
    rate = done / max(time.perf_counter() - started, 1e-9)
    eta = (total - done) / rate if rate > 0 else 0.0
    err.write(f"\r[{'#' * filled}{' ' * (width - filled)}] {done}/{total} runs, {bad} violating, "
              f"eta {eta:.0f}s ")
    if done == total:
        err.write("\n")
    err.flush()


def cmd_explore(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.dcs < 1 or args.runs < 1 or args.duration <= 0 or not 1 <= args.replicas <= 3:
        err.write("explore: --dcs and --runs must be >= 1, --duration > 0, --replicas 1-3\n")
        return 2
    if _unwritable(err, args.report):
        return 2
    jobs = [(args.dcs, args.seed + i, float(args.duration), args.replicas, args.report, i == 0)
            for i in range(args.runs)]
    workers = max(1, min(args.jobs or os.cpu_count() or 1, args.runs))
    _tune_gc()
    started = time.perf_counter()
    simulated = 0.0
    violating = 0
    total_violations = 0
    err_is_tty = err.isatty()
    if not err_is_tty and args.runs > 1:
        err.write(f"explore: {args.runs} runs of {args.duration:g}s on {workers} worker(s)\n")

    def handle(summary: dict[str, Any], done: int) -> None:
        nonlocal simulated, violating, total_violations
        simulated += summary["simulated_s"]
        if summary["violations"]:
            violating += 1
            total_violations += len(summary["violations"])
            replay = (f"python -m sim explore --dcs {args.dcs} --runs 1 --duration {args.duration:g} "
                      f"--seed {summary['seed']} --replicas {args.replicas} --report sim-report")
            _print_violations(out, summary["violations"], summary["seed"], replay)
            out.flush()
        if summary.get("report"):
            out.write(f"report: {summary['report']}\n")
        _progress(err, done, args.runs, violating, started)

    if workers == 1:
        for done, job in enumerate(jobs, start=1):
            handle(_explore_one(job), done)
    else:
        ctx = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
        with ctx.Pool(workers) as pool:
            for done, summary in enumerate(pool.imap(_explore_one, jobs), start=1):
                handle(summary, done)
    wall = time.perf_counter() - started
    out.write(f"explore: {args.runs} runs, {violating} with violations\n")
    out.write(_summary(args.runs, total_violations, simulated, wall) + "\n")
    return 1 if total_violations else 0


def cmd_check(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from sim.checker import check_history

    try:
        events = load(args.history)
    except (OSError, HistoryError) as exc:
        err.write(f"{exc}\n")
        return 2
    violations = check_history(events)
    for v in violations:
        where = f" in {v.dc}" if v.dc else ""
        out.write(f"VIOLATION {v.invariant} at t={v.t:.3f}s{where}: {v.detail}\n")
    out.write(json.dumps({"events": len(events), "violations": len(violations)}) + "\n")
    return 1 if violations else 0


def cmd_report(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from sim.report import report_history

    try:
        events = load(args.history)
    except (OSError, HistoryError) as exc:
        err.write(f"{exc}\n")
        return 2
    if _unwritable(err, args.out):
        return 2
    name = os.path.splitext(os.path.basename(args.history))[0]
    html_path, png_path = report_history(events, args.out, name)
    out.write(f"{html_path}\n{png_path}\n")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sim", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run one scenario file")
    run.add_argument("scenario")
    run.add_argument("--seed", type=int, default=1)
    run.add_argument("--report", metavar="DIR", help="write <name>-seed<N>.html/.png/.jsonl here")
    run.add_argument("--history", metavar="FILE", help="write the event log (JSON lines) here")
    explore = sub.add_parser("explore", help="run random fault schedules")
    explore.add_argument("--dcs", type=int, default=3)
    explore.add_argument("--runs", type=int, default=10)
    explore.add_argument("--duration", type=float, default=600.0)
    explore.add_argument("--seed", type=int, default=1)
    explore.add_argument("--replicas", type=int, default=2, help="coordinator replicas per DC (1-3)")
    explore.add_argument("--jobs", type=int, default=0, help="worker processes (default: CPU count)")
    explore.add_argument("--report", metavar="DIR", help="reports for the first and every violating run")
    check = sub.add_parser("check", help="check the invariants over a recorded history")
    check.add_argument("history")
    report = sub.add_parser("report", help="draw a recorded history (sim or lab)")
    report.add_argument("history")
    report.add_argument("--out", default="sim-report")
    return p


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        args = parser().parse_args(argv)
    except SystemExit as exc:
        return 2 if exc.code else 0
    commands = {"run": cmd_run, "explore": cmd_explore, "check": cmd_check, "report": cmd_report}
    return commands[args.command](args, out, err)
