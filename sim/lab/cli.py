"""`python -m sim.lab run SCENARIO|all [--report DIR]` and `run_one`, the API tests use.

Exit codes: 0 every scenario ran with no checker violation, 1 a violation or a scenario
that could not be driven, 2 usage error, 3 the lab cannot run here (the reason printed).
Ctrl-C or SIGTERM: the current scenario is torn down (namespaces, links, processes)
before exiting 130.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sim.lab import net
from sim.lab.analyze import Latencies, check, fault_latencies, render
from sim.lab.harness import Lab, LabConfig
from sim.lab.run import run_scenario
from sim.lab.scenarios import SCENARIOS, LabScenario, from_sim_scenario


@dataclass
class LabResult:
    scenario: str
    run_dir: str
    violations: list[dict[str, Any]]
    latencies: Latencies
    writes_accepted: int
    writes_rejected: int
    report: str | None
    wall_s: float
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None and not self.violations


def resolve(name: str) -> LabScenario:
    if name in SCENARIOS:
        return SCENARIOS[name]
    if name.endswith((".yaml", ".yml")):
        from sim.scenario import load_scenario

        return from_sim_scenario(load_scenario(name))
    raise KeyError(f"unknown scenario {name!r}; built-in: {', '.join(SCENARIOS)}")


async def _run(sc: LabScenario, run_dir: Path, status_interval: float | None) -> Lab:
    lab = Lab(LabConfig(sc.topology, sc.replicas, run_dir, sc.name, status_interval=status_interval))
    main = asyncio.current_task()
    loop = asyncio.get_running_loop()
    if main is not None:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGTERM, main.cancel)
    async with lab:
        await run_scenario(lab, sc.faults, sc.quiet_at)
    return lab


def run_one(
    name: str, report_dir: str | Path | None = None, status_interval: float | None = None
) -> LabResult:
    """Run one scenario end to end (needs root); always tears the lab down.
    `status_interval`: also sample every replica's /v1/status into status.jsonl."""
    sc = resolve(name)
    base = Path(report_dir) if report_dir is not None else Path(tempfile.mkdtemp(prefix="cqlab-"))
    run_dir = base / sc.name
    started = time.monotonic()
    error: str | None = None
    with net.lab_lock():
        try:
            asyncio.run(_run(sc, run_dir, status_interval))
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        finally:
            net.teardown()
    history_path = run_dir / "history.jsonl"
    from sim.history import load

    history = load(str(history_path)) if history_path.exists() else []
    found = check(history) if history else []
    violations = [asdict(v) for v in found]
    lat = fault_latencies(history) if history else Latencies()
    writes = [e for e in history if e["kind"] == "write"]
    report = None
    notes: list[str] = []
    if history:
        try:
            report, _png = render(history, run_dir, "report", found)
        except Exception as exc:  # the report is a by-product; the verdict stands without it
            notes.append(f"report renderer failed: {type(exc).__name__}: {exc}")
    result = LabResult(
        sc.name, str(run_dir), violations, lat,
        sum(1 for w in writes if w.get("accepted")), sum(1 for w in writes if not w.get("accepted")),
        report, time.monotonic() - started, error, notes,
    )
    (run_dir / "result.json").write_text(json.dumps(asdict(result), indent=2) + "\n", encoding="utf-8")
    return result


def _summary(r: LabResult) -> str:
    lat = r.latencies
    fence = ", ".join(f"{x:.2f}" for x in lat.fence) or "-"
    rejoin = ", ".join(f"{x:.2f}" for x in lat.rejoin) or "-"
    head = "OK  " if r.ok else "FAIL"
    lines = [
        f"{head} {r.scenario}: {len(r.violations)} violation(s); fence s [{fence}]; rejoin s [{rejoin}]; "
        f"false fences {lat.false_fences}; writes {r.writes_accepted} accepted / "
        f"{r.writes_rejected} rejected; "
        f"{r.wall_s:.0f}s; {r.run_dir}"
    ]
    if r.error:
        lines.append(f"     error: {r.error}")
    lines += [f"     violation {v['invariant']} at t={v['t']:.2f}: {v['detail']}" for v in r.violations]
    lines += [f"     note: {n}" for n in r.notes]
    if r.report:
        lines.append(f"     report: {r.report}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim.lab", description="the partition lab (needs root)")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a scenario (built-in name, a sim scenario .yaml, or 'all')")
    run.add_argument("scenario")
    run.add_argument("--report", help="directory for histories and reports (default: a temp dir)")
    run.add_argument("--status-interval", type=float, default=None,
                     help="diagnostics: sample each replica's /v1/status into status.jsonl every S seconds")
    run.add_argument("--repeat", type=int, default=1, help="run each scenario N times (N <= 50)")
    sub.add_parser("list", help="list the built-in scenarios")
    sub.add_parser("teardown", help="remove leftovers of a crashed run (cqlab namespaces and links)")
    args = parser.parse_args(argv)
    if args.command == "list":
        for sc in SCENARIOS.values():
            print(f"{sc.name:24} {sc.description}")
        return 0
    if args.command == "teardown":
        net.teardown()
        return 0
    reason = net.unavailable_reason()
    if reason is not None:
        print(f"sim.lab: cannot run: {reason}", file=sys.stderr)
        return 3
    names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    if not 1 <= args.repeat <= 50:
        print("sim.lab: --repeat must be 1..50", file=sys.stderr)
        return 2
    try:
        for name in names:
            resolve(name)
    except Exception as exc:
        print(f"sim.lab: {exc}", file=sys.stderr)
        return 2
    report = Path(args.report) if args.report else Path(tempfile.mkdtemp(prefix="cqlab-"))
    failed = 0
    try:
        for k in range(args.repeat):
            for name in names:
                base = report if args.repeat == 1 else report / f"run{k + 1}"
                result = run_one(name, base, args.status_interval)
                print(_summary(result), flush=True)
                failed += not result.ok
    except KeyboardInterrupt:
        net.teardown()
        return 130
    return 1 if failed else 0
