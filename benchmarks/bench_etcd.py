"""Side by side, same machine, same load tool: the coordinator's `GET /v1/may-write`
against a serializable read of one key from etcd's HTTP (grpc-gateway) API.

    .venv/bin/python benchmarks/bench_etcd.py [--duration 10] [--connections 32] [--threads 2]
        [--out benchmarks/results/lab.json]

Needs `wrk` and `etcd` (Debian packages: wrk, etcd-server). etcd is started by this
script on free loopback ports with a throw-away data dir and stopped at the end; the
coordinator runs as a real `coordinator run` replica of a 3-DC loopback cluster against
the emulator. wrk runs with `--latency`; we report requests/s, p50 and p99 for both and
the ratio (target: coordinator >= 2x etcd's requests/s with p99 <= 2 ms). Results are
merged into the JSON file under "may_write_vs_etcd".

With two or more CPUs (default `--pin`), each server under test gets CPU 0 to itself and
everything else runs on CPU 1: the measured replica (or etcd, all its threads) on CPU 0;
wrk, the emulator and the other replicas on CPU 1. Both servers get the same one core,
so the comparison stays like for like. `--no-pin` leaves scheduling to the kernel.

Two readings of the p99 target are reported. At saturation: wrk's 32 connections send
back to back, so the server's queue is always full (`met_at_saturation`). At twice etcd's
peak rate: etcd is measured first, then the coordinator again with wrk's `delay()` pacing
each connection so that the 32 aim at 2x etcd's requests/s
(`met_at_twice_etcd_rps`: achieved >= 2x etcd and p99 <= 2 ms there).
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_lab import merge
from sim.lab.loopback import LoopbackCluster

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "lab.json"
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def parse_wrk(text: str) -> dict[str, Any]:
    """Requests/s and latency percentiles (ms) from `wrk --latency` output."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    out: dict[str, Any] = {"rps": float(rps.group(1)) if rps else None}
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        out[f"p{pct}_ms"] = round(float(m.group(1)) * UNITS[m.group(2)], 3) if m else None
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    out["non_2xx"] = int(non2xx.group(1)) if non2xx else 0
    errors = re.search(r"Socket errors:(.*)", text)
    out["socket_errors"] = errors.group(1).strip() if errors else None
    return out


PIN = {"server": "0", "rest": "1"}
"""CPU lists for `taskset`/`sched_setaffinity` when pinning."""


def can_pin() -> bool:
    return (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None


def on_cpus(argv: list[str], pin: bool, which: str) -> list[str]:
    return ["taskset", "-c", PIN[which], *argv] if pin else argv


def pin_pid(pid: int | None, which: str) -> None:
    """Moves every thread of `pid` to the CPU list `PIN[which]`."""
    if pid is None:
        return
    cpus = {int(c) for c in PIN[which].split(",")}
    for tid in os.listdir(f"/proc/{pid}/task"):
        os.sched_setaffinity(int(tid), cpus)


def cpu_seconds(pid: int) -> float:
    """user+system CPU seconds of `pid` (all threads), from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(url: str, duration: int, connections: int, threads: int, script: str | None = None,
        pin: bool = False) -> dict[str, Any]:
    argv = on_cpus(["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency"], pin, "rest")
    if script:
        argv += ["-s", script]
    proc = subprocess.run([*argv, url], capture_output=True, text=True, timeout=duration + 60, check=True)
    return parse_wrk(proc.stdout)


def paced_script(connections: int, target_rps: float, latency_ms: float = 0.5) -> str:
    """A wrk script whose `delay()` paces each connection so that `connections` of them aim
    at `target_rps` requests per second (`latency_ms` is the guessed answer time; the run
    reports what was achieved). wrk's delay is in whole ms; a fixed
    delay would keep the connections in step (bursts of `connections` requests at once),
    so each delay is drawn uniformly from {d-1, d, d+1} (mean d)."""
    mean = max(1, math.floor(connections * 1000.0 / target_rps - latency_ms))
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(f"function delay()\n  return math.random({mean - 1}, {mean + 1})\nend\n")
        return fh.name


def bench_coordinator(duration: int, connections: int, threads: int, pin: bool,
                      paced_rps: float | None = None) -> dict[str, Any]:
    with LoopbackCluster(3, 1) as cluster:
        api = cluster.apis["dc1-r1"]
        measured = cluster.replicas["dc1-r1"].pid
        assert measured is not None
        if pin:
            pin_pid(measured, "server")
            for proc in [cluster.emulator, *cluster.replicas.values()]:
                if proc is not None and proc.pid != measured:
                    pin_pid(proc.pid, "rest")
        for _ in range(300):
            if httpx.get(f"{api}/v1/may-write", trust_env=False).status_code == 200:
                break
            time.sleep(0.1)
        wrk(f"{api}/v1/may-write", 2, connections, threads, pin=pin)  # warm-up
        load = os.getloadavg()[0]
        cpu = cpu_seconds(measured)
        result = wrk(f"{api}/v1/may-write", duration, connections, threads, pin=pin)
        cpu = cpu_seconds(measured) - cpu
        out = {**result, "load_avg_1m_before": load, "server_cpu_s": round(cpu, 2), "pinned": pin}
        if paced_rps:
            script = paced_script(connections, paced_rps)
            paced = wrk(f"{api}/v1/may-write", duration, connections, threads, script, pin)
            out["paced"] = {**paced, "target_rps": round(paced_rps, 1)}
        return out


def bench_etcd(duration: int, connections: int, threads: int, pin: bool) -> dict[str, Any]:
    data = tempfile.mkdtemp(prefix="cqlab-etcd-")
    client, peer = free_port(), free_port()
    url = f"http://127.0.0.1:{client}"
    argv = [
        "etcd", "--name", "bench", "--data-dir", data, "--listen-client-urls", url,
        "--advertise-client-urls", url, "--listen-peer-urls", f"http://127.0.0.1:{peer}",
        "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
        "--initial-cluster", f"bench=http://127.0.0.1:{peer}", "--log-level", "error",
    ]
    proc = subprocess.Popen(on_cpus(argv, pin, "server"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        key = base64.b64encode(b"coordinator/may-write").decode()
        value = base64.b64encode(b"yes").decode()
        for _ in range(200):
            try:
                r = httpx.post(f"{url}/v3/kv/put", json={"key": key, "value": value}, trust_env=False)
                if r.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            raise RuntimeError("etcd did not come up")
        body = json.dumps({"key": key, "serializable": True})
        check = httpx.post(f"{url}/v3/kv/range", content=body, trust_env=False).json()
        assert check.get("kvs"), check
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
            fh.write(f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\n'
                     'wrk.headers["Content-Type"] = "application/json"\n')
            script = fh.name
        wrk(f"{url}/v3/kv/range", 2, connections, threads, script, pin)
        load = os.getloadavg()[0]
        cpu = cpu_seconds(proc.pid)
        result = wrk(f"{url}/v3/kv/range", duration, connections, threads, script, pin)
        result.update(load_avg_1m_before=load, server_cpu_s=round(cpu_seconds(proc.pid) - cpu, 2), pinned=pin)
        version = subprocess.run(["etcd", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
        result["version"] = version
        return result
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(data, ignore_errors=True)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--duration", type=int, default=10)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--pin", action=argparse.BooleanOptionalAction, default=None,
                   help="server alone on CPU 0, everything else on CPU 1 (default: when >= 2 CPUs)")
    args = p.parse_args()
    pin = can_pin() if args.pin is None else args.pin
    for tool in ("wrk", "etcd"):
        if shutil.which(tool) is None:
            print(f"{tool} not found (Debian packages: wrk, etcd-server)", file=sys.stderr)
            return 3
    etcd = bench_etcd(args.duration, args.connections, args.threads, pin)
    twice = 2 * etcd["rps"] if etcd["rps"] else None
    coord = bench_coordinator(args.duration, args.connections, args.threads, pin, paced_rps=twice)
    ratio = round(coord["rps"] / etcd["rps"], 2) if coord["rps"] and etcd["rps"] else None
    paced = coord.get("paced") or {}
    paced_ok = bool(twice and paced.get("rps") and paced["rps"] >= twice
                    and paced.get("p99_ms") is not None and paced["p99_ms"] <= 2.0)
    result = {
        "tool": f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s --latency",
        "coordinator_may_write": coord, "etcd_serializable_range": etcd, "rps_ratio": ratio,
        "target": "ratio >= 2 and coordinator p99 <= 2 ms",
        "met_at_saturation": bool(ratio and ratio >= 2 and coord["p99_ms"] is not None
                                  and coord["p99_ms"] <= 2.0),
        "met_at_twice_etcd_rps": paced_ok,
    }
    print(json.dumps(result, indent=2))
    merge(args.out, {"may_write_vs_etcd": result})
    return 0


if __name__ == "__main__":
    sys.exit(main())
