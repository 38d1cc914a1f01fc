"""Global lock: fail-over after the holder's DC is isolated, hand-over on graceful release.

Two measurements, one JSON document (benchmarks/results/global.json):

* ``sim``: the deterministic simulator (sim/world/global_sim.py, virtual time, 3 DCs, 5 ms
  WAN one-way, default GlobalLockSpec: lease 3 s, margin 0.5 s, renew 0.5 s), `--runs`
  seeds each: isolate the holder's DC and time until another DC holds; ask the holder to
  release and time until another DC holds. Pure protocol cost, no DC fence.
* ``real``: real processes (emulator + one `coordinator run` per DC, coordinator's
  default DC timers), `--real-runs` isolations of the holder's DC, timed on the wall clock
  by polling `GET /v1/locks/email` of every DC every 20 ms until another DC holds.

Expected: fail-over ~ lease + margin + up to one renew interval of observation lag +
stagger (rank x renew/2); hand-over ~ one read round (<= renew_interval) + one write RTT.

    .venv/bin/python benchmarks/bench_global.py [--runs 50] [--real-runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from coordinator.core.topology import GlobalLockSpec
from sim.world.global_sim import GlobalWorld

DCS = ("dc1", "dc2", "dc3")
RESULTS = Path(__file__).resolve().parent / "results" / "global.json"


def summary(xs: list[float]) -> dict[str, float]:
    xs = sorted(xs)
    if not xs:
        return {}
    return {
        "n": len(xs),
        "min": round(xs[0], 3),
        "p50": round(statistics.median(xs), 3),
        "p95": round(xs[min(len(xs) - 1, int(0.95 * len(xs)))], 3),
        "max": round(xs[-1], 3),
    }


def _other_holder(w: GlobalWorld, old: str | None) -> Callable[[], bool]:
    return lambda: w.holder() not in (None, old)


def _one_sim(seed: int) -> tuple[float | None, float | None, int]:
    w = GlobalWorld(DCS, seed=seed)
    w.wait_for(_other_holder(w, None), 10.0)
    w.run_for(2.0 + (seed % 10) * 0.05)
    old = w.holder()
    assert old is not None
    w.isolate(old.split("/")[0])
    fail = w.wait_for(_other_holder(w, old), 30.0, step=0.005)
    w.heal_all()
    w.run_for(3.0)
    cur = w.holder()
    assert cur is not None
    w.hosts[cur.split("/")[0]].invoke(lambda lock, now: lock.release(now, hold_off=30.0))
    hand = w.wait_for(_other_holder(w, cur), 30.0, step=0.005)
    return fail, hand, len(w.checker.violations)


def sim_runs(runs: int) -> dict[str, Any]:
    failover: list[float] = []
    handover: list[float] = []
    violations = 0
    for seed in range(runs):
        fail, hand, bad = _one_sim(seed)
        if fail is not None:
            failover.append(fail)
        if hand is not None:
            handover.append(hand)
        violations += bad
    spec = GlobalLockSpec("g")
    return {
        "spec": {"lease": spec.lease, "margin": spec.margin, "renew_interval": spec.renew_interval},
        "failover_after_isolation_s": summary(failover),
        "handover_on_release_s": summary(handover),
        "checker_violations": violations,
    }


def real_runs(runs: int) -> dict[str, Any]:
    from coordinator.demo_cluster import LocalCluster
    from coordinator.locks_client import LocksClient, LockUnavailable

    workdir = Path(tempfile.mkdtemp(prefix="bench-global-"))
    topo = workdir / "topology.yaml"
    dcs = "".join(f"  {dc}: {{}}\n" for dc in DCS)
    topo.write_text(f"cluster: bench\ndatacenters:\n{dcs}global_locks:\n  email: {{}}\n")
    times: list[float] = []
    with LocalCluster(topo, DCS, workdir=workdir) as c:
        c.start_emulator()
        for dc in DCS:
            c.start_replica(dc, f"{dc}-r1")
        clients = {dc: LocksClient([c.api(f"{dc}-r1")], timeout=0.5) for dc in DCS}

        def holders() -> list[str]:
            out = []
            for dc, cl in clients.items():
                try:
                    if cl.get("email").held:
                        out.append(dc)
                except LockUnavailable:
                    pass
            return out

        for _ in range(runs):
            end = time.monotonic() + 30
            while not holders() and time.monotonic() < end:
                time.sleep(0.02)
            time.sleep(2.0)
            held = holders()
            if len(held) != 1:
                continue
            old = held[0]
            c.isolate(old)
            t0 = time.monotonic()
            while time.monotonic() - t0 < 30:
                now_held = holders()
                if now_held and now_held != [old]:
                    times.append(time.monotonic() - t0)
                    break
                time.sleep(0.02)
            c.heal()
            time.sleep(8.0)  # the healed DC rejoins (catch-up) before the next cut
        for cl in clients.values():
            cl.close()
    return {"failover_after_isolation_s": summary(times), "load_avg_1m": os.getloadavg()[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--real-runs", type=int, default=5)
    args = ap.parse_args()
    result: dict[str, Any] = {"sim": sim_runs(args.runs)}
    if args.real_runs > 0:
        result["real"] = real_runs(args.real_runs)
    text = json.dumps(result, indent=2)
    print(text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text + "\n")


if __name__ == "__main__":
    main()
