"""Benchmark of the deterministic simulator (sim.world): speed, scaling, quorum decision cost.

    .venv/bin/python benchmarks/bench_sim.py [--quick] [--out benchmarks/results/sim.json]

1. Headline: 5 DCs x 2 replicas, default timers, no faults, after a 5 s warm-up: simulated seconds per wall
   second and per CPU second (CPU time is the load-independent figure; the target is
   >= 10,000 simulated seconds per wall second).
2. Scaling table for 3, 5, 9, 25 and 50 DCs (2 replicas each): speed, peak RSS of a fresh
   process running it, Consul requests and events per simulated second, and the CPU cost
   of one probe round (CPU per simulated second / (N leaders x rounds per second)).
3. Quorum decision time: `coordinator.core.quorum.decide` on a full mesh and on a
   majorities ring of N DCs (mean over repeats).

4. The acceptance explore's unit of work: CPU seconds per 10-minute explore run of 3 DCs
   (`python -m sim explore --dcs 3 --duration 600`, seeds 1..EXPLORE_RUNS: random faults,
   BUGGIFY on odd seeds, one global lock on seeds divisible by 5), with the CLI's GC tuning.

Each configuration runs in a fresh child process (so RSS is per configuration). Prints
one JSON document and writes it to --out. No network: everything is in-process.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import time
from typing import Any

DURATIONS = {3: 300.0, 5: 200.0, 9: 60.0, 25: 10.0, 50: 5.0}
WARMUP = 5.0
"""Simulated seconds run before measuring (start-up: elections, first rounds, catch-up)."""
QUICK = {3: 60.0, 5: 40.0, 9: 10.0, 25: 3.0, 50: 1.5}


def run_world(args: tuple[int, float]) -> dict[str, Any]:
    dcs, duration = args
    from sim.world.runs import explore_world

    world = explore_world(dcs, WARMUP + duration, seed=1, replicas=2, record=False, faults=False)
    world.run_until(WARMUP)
    events0, requests0 = world.queue.processed, world.fabric.requests
    cpu0, wall0 = time.process_time(), time.perf_counter()
    result = world.run(WARMUP + duration)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    events, requests = result.events - events0, result.requests - requests0
    rounds_per_s = dcs / world.topology.timers.probe_interval
    return {
        "dcs": dcs,
        "replicas_per_dc": 2,
        "simulated_s": duration,
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "speed_wall": round(duration / wall, 2),
        "speed_cpu": round(duration / cpu, 2),
        "events_per_sim_s": round(events / duration, 1),
        "consul_requests_per_sim_s": round(requests / duration, 1),
        "cpu_ms_per_probe_round": round(1000 * cpu / duration / rounds_per_s, 3),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "violations": len(result.violations),
    }


EXPLORE_RUNS = 10
QUICK_EXPLORE_RUNS = 2


def explore_cost(runs: int) -> dict[str, Any]:
    from sim.cli import _tune_gc
    from sim.world.runs import run_explore

    _tune_gc()
    run_explore(3, 30.0, 1000)  # warm-up (imports, caches)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    events = requests = 0
    for seed in range(1, runs + 1):
        result = run_explore(3, 600.0, seed)
        events += result.events
        requests += result.requests
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {
        "dcs": 3,
        "runs": runs,
        "duration_s": 600.0,
        "cpu_s_per_run": round(cpu / runs, 3),
        "wall_s_per_run": round(wall / runs, 3),
        "speed_cpu": round(600.0 * runs / cpu, 1),
        "events_per_run": round(events / runs),
        "consul_requests_per_run": round(requests / runs),
        "acceptance_cpu_s_200_runs": round(200 * cpu / runs, 1),
    }


def quorum_times(n: int, repeats: int) -> dict[str, Any]:
    from coordinator.core.matrix import Matrix
    from coordinator.core.quorum import decide
    from sim.world.runs import explore_topology

    topo = explore_topology(n)
    names = tuple(sorted(topo.names))
    full = frozenset((a, b) for a in names for b in names if a != b)
    ring = frozenset(
        (a, b) for i, a in enumerate(names) for j, b in enumerate(names)
        if a != b and (i - j) % n in (1, n - 1)
    )
    out: dict[str, Any] = {"dcs": n}
    for label, directed in (("full_mesh", full), ("ring", ring)):
        matrix = Matrix(names, directed)
        started = time.perf_counter()
        for _ in range(repeats):
            decide(matrix, topo, names[0])
        out[f"decide_us_{label}"] = round(1e6 * (time.perf_counter() - started) / repeats, 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="shorter simulated durations")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "sim.json"))
    args = parser.parse_args()
    durations = QUICK if args.quick else DURATIONS
    load_before = os.getloadavg()
    ctx = multiprocessing.get_context("fork")
    rows = []
    for dcs, duration in durations.items():
        with ctx.Pool(1, maxtasksperchild=1) as pool:
            rows.append(pool.apply(run_world, ((dcs, duration),)))
        print(json.dumps(rows[-1]), flush=True)
    headline = next(r for r in rows if r["dcs"] == 5)
    with ctx.Pool(1, maxtasksperchild=1) as pool:
        explore = pool.apply(explore_cost, (QUICK_EXPLORE_RUNS if args.quick else EXPLORE_RUNS,))
    print(json.dumps(explore), flush=True)
    doc = {
        "benchmark": "sim",
        "target": ">= 10000 simulated s per wall s for 5 DCs x 2 replicas at default timers",
        "headline_5dc": headline,
        "meets_target": headline["speed_wall"] >= 10_000,
        "scaling": rows,
        "explore_3dc": explore,
        "quorum_decide": [quorum_times(n, 200 if n < 25 else 50) for n in durations],
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "cpus": os.cpu_count(),
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=2)
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
