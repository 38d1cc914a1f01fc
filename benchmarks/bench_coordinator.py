"""Coordinator end-to-end benchmark on real processes (emulator + `coordinator run`).

Measures, at the timers of topology.yaml (the defaults):

* fence latency: dc1 isolated (every link to/from it cut) -> dc1's leader answers 503,
  seen by a client polling ``/v1/may-write`` every `POLL` s (so up to POLL of sampling
  error), over ``--cuts`` cuts: p50 / p99 / max;
* rejoin latency: heal -> dc1 writable again (same client), same cuts;
* false fences: every may-write sample of dc2/dc3 taken while dc1 was cut off (and for
  ``--hold`` s after it fenced) that said no (target 0);
* fail-over: SIGKILL of dc1's leader replica -> the standby answers yes, ``--failovers``
  runs (the killed replica is restarted between runs);
* may-write throughput and p99 latency with 32 connections (``wrk -t2 -c32``; an aiohttp
  load generator in a separate process when wrk is missing -- the JSON names the tool).

Prints one JSON document and writes benchmarks/results/coordinator.json. Every process it
starts is stopped on exit (LocalCluster). Usage::

    .venv/bin/python benchmarks/bench_coordinator.py [--cuts 20] [--failovers 5] [--duration 10]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from coordinator.demo_cluster import LocalCluster

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results" / "coordinator.json"
POLL = 0.005
DEADLINE = 60.0


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    if not s:
        return float("nan")
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def summary(values: list[float]) -> dict[str, Any]:
    return {
        "n": len(values),
        "p50_s": round(pct(values, 0.5), 3),
        "p99_s": round(pct(values, 0.99), 3),
        "max_s": round(max(values), 3) if values else None,
    }


class Probe:
    """Direct may-write GETs against fixed replica URLs (no leader lookup in the loop)."""

    def __init__(self) -> None:
        self.http = httpx.Client(trust_env=False, timeout=2.0)

    def allowed(self, url: str) -> bool | None:
        try:
            return bool(self.http.get(url + "/v1/may-write").json().get("allowed"))
        except (httpx.HTTPError, ValueError):
            return None


def wait(cond: Any, what: str) -> float:
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        if cond():
            return time.monotonic()
        time.sleep(POLL)
    raise RuntimeError(f"{what} did not happen within {DEADLINE}s")


def full_mesh(c: LocalCluster) -> bool:
    for dc in c.datacenters:
        rid = c.leader_replica(dc)
        st = c.status(rid) if rid else None
        if not st or not st.get("allowed") or len((st.get("quorum") or {}).get("members", ())) != 3:
            return False
    return True


def cuts(c: LocalCluster, n: int, hold: float) -> dict[str, Any]:
    probe = Probe()
    fence: list[float] = []
    rejoin: list[float] = []
    samples = refusals = 0
    for _ in range(n):
        wait(lambda: full_mesh(c), "full mesh")
        leader = c.leader_replica("dc1")
        assert leader is not None
        dc1 = c.api(leader)
        majority = [c.api(c.leader_replica(dc) or f"{dc}-a") for dc in ("dc2", "dc3")]
        t0 = time.monotonic()
        c.isolate("dc1")
        fenced_at = None
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end:
            for url in majority:
                samples += 1
                refusals += probe.allowed(url) is not True
            if fenced_at is None and probe.allowed(dc1) is False:
                fenced_at = time.monotonic()
                fence.append(fenced_at - t0)
            if fenced_at is not None and time.monotonic() - fenced_at >= hold:
                break
            time.sleep(POLL)
        if fenced_at is None:
            raise RuntimeError("dc1 did not fence")
        t1 = time.monotonic()
        c.heal()
        back = wait(lambda u=dc1: probe.allowed(u) is True, "dc1 rejoin")
        rejoin.append(back - t1)
    return {
        "fence": summary(fence),
        "rejoin": summary(rejoin),
        "false_fences": refusals,
        "majority_samples": samples,
        "fence_all_s": [round(x, 3) for x in fence],
        "rejoin_all_s": [round(x, 3) for x in rejoin],
    }


def failovers(c: LocalCluster, n: int) -> dict[str, Any]:
    probe = Probe()
    times: list[float] = []
    for _ in range(n):
        wait(lambda: full_mesh(c), "full mesh")
        leader = c.leader_replica("dc1")
        assert leader is not None
        standby = next(r for r in c.replicas_of("dc1") if r != leader)
        url = c.api(standby)
        t0 = time.monotonic()
        c.kill(leader, signal.SIGKILL)
        done = wait(lambda u=url: probe.allowed(u) is True, "fail-over")
        times.append(done - t0)
        c.start_replica("dc1", leader)
    return {**summary(times), "all_s": [round(x, 3) for x in times]}


def throughput(url: str, duration: float, connections: int) -> dict[str, Any]:
    target = url + "/v1/may-write"
    if shutil.which("wrk"):
        res = subprocess.run(
            ["wrk", "-t2", f"-c{connections}", f"-d{duration:g}s", "--latency", target],
            capture_output=True,
            text=True,
            timeout=duration + 30,
        )
        rps = re.search(r"Requests/sec:\s+([\d.]+)", res.stdout)
        p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", res.stdout, re.M)
        scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}
        return {
            "tool": "wrk -t2",
            "connections": connections,
            "duration_s": duration,
            "requests_per_s": float(rps.group(1)) if rps else None,
            "p99_ms": round(float(p99.group(1)) * scale[p99.group(2)], 3) if p99 else None,
            "non_2xx": "Non-2xx" in res.stdout,
        }
    return {"tool": "none: wrk not installed (apt-get install -y wrk)", "requests_per_s": None}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--cuts", type=int, default=20)
    ap.add_argument("--failovers", type=int, default=5)
    ap.add_argument("--hold", type=float, default=1.5, help="seconds the cut is kept after dc1 fenced")
    ap.add_argument("--duration", type=float, default=10.0, help="wrk run length")
    ap.add_argument("--connections", type=int, default=32)
    args = ap.parse_args(argv)
    load_before = os.getloadavg()[0]
    result: dict[str, Any] = {"benchmark": "coordinator", "timers": "topology.yaml defaults"}
    with LocalCluster(REPO / "topology.yaml", ("dc1", "dc2", "dc3")) as c:
        c.start_emulator()
        for dc, ids in (("dc1", ["dc1-a", "dc1-b"]), ("dc2", ["dc2-a"]), ("dc3", ["dc3-a"])):
            for rid in ids:
                c.start_replica(dc, rid)
        wait(lambda: full_mesh(c), "initial full mesh")
        result["may_write"] = throughput(c.api("dc2-a"), args.duration, args.connections)
        result["partitions"] = cuts(c, args.cuts, args.hold)
        result["failover"] = failovers(c, args.failovers)
    result["loadavg_1m"] = {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)}
    result["cpus"] = os.cpu_count()
    text = json.dumps(result, indent=2)
    print(text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
