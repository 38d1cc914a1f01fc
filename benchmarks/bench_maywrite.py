"""Focused, repeatable benchmark of `GET /v1/may-write` on one `coordinator run` replica.

    .venv/bin/python benchmarks/bench_maywrite.py [--duration 10] [--connections 32]
        [--runs 3] [--warmup 2] [--label TEXT] [--server coordinator|hello] [--with-hello]
        [--out benchmarks/results/maywrite.json]

What it does:

1. starts the Consul emulator (``python -m sim.consul``) serving one DC and one replica
   (``python -m coordinator run``) of a one-DC topology, both on kernel-chosen loopback
   ports; a one-DC cluster is its own quorum, so the replica becomes writable alone;
2. waits (bounded) until ``GET /v1/may-write`` answers 200;
3. on a machine with >= 2 CPUs pins the replica to CPU 0 and wrk (and the emulator, which
   only sees a few requests per second) to CPU 1 with ``taskset``, so "one core" is
   literal for the server;
4. runs ``wrk -t1 -cC -dDs --latency`` `runs` times after a warm-up, and for each run
   reports requests/s, p50/p99/max from wrk's latency distribution, non-2xx count, the
   replica's CPU time per request (utime + stime from /proc/PID/stat over the run, divided
   by wrk's request count; the figure least affected by other load) with the requests/s
   it projects for a dedicated core (1 / CPU per request: an estimate, not a measurement),
   the share of its core the replica actually got, and /proc/loadavg before and after.

`--server hello` runs a plain aiohttp hello-world under uvloop in place of the replica (same
pinning, same wrk), the floor aiohttp itself sets on this machine; `--with-hello` runs it
after the replica in the same invocation and stores both.

The JSON document (printed and written to `--out`) holds every run and a summary with the
best and the median run by requests/s. Only 127.0.0.1 is used. Needs `wrk` (Debian).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import httpx

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "maywrite.json"
ROOT = Path(__file__).resolve().parent.parent
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}
READY_TIMEOUT = 30.0
WRITABLE_TIMEOUT = 30.0
TARGET_RPS = 20_000.0
TARGET_P99_MS = 2.0

TOPOLOGY = """\
cluster: bench-maywrite
datacenters:
  dc1: {weight: 1}
"""


def loadavg() -> list[float]:
    with open("/proc/loadavg", encoding="ascii") as fh:
        return [float(x) for x in fh.read().split()[:3]]


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def parse_wrk(text: str) -> dict[str, Any]:
    """Requests, requests/s and latency percentiles (ms) from `wrk --latency` output."""
    out: dict[str, Any] = {}
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    out["rps"] = float(rps.group(1)) if rps else None
    total = re.search(r"(\d+) requests in", text)
    out["requests"] = int(total.group(1)) if total else None
    for pct in ("50", "75", "90", "99"):
        m = re.search(rf"^\s+{pct}(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        out[f"p{pct}_ms"] = round(float(m.group(1)) * UNITS[m.group(2)], 3) if m else None
    mx = re.search(r"^\s+Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)", text, re.M)
    out["max_ms"] = round(float(mx.group(1)) * UNITS[mx.group(2)], 3) if mx else None
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    out["non_2xx"] = int(non2xx.group(1)) if non2xx else 0
    errors = re.search(r"Socket errors:(.*)", text)
    out["socket_errors"] = errors.group(1).strip() if errors else None
    return out


class Server:
    """One child process whose first stdout line is a JSON ready line."""

    def __init__(self, name: str, argv: Sequence[str], workdir: Path) -> None:
        self.name = name
        self.out_path = workdir / f"{name}.out"
        self.err_path = workdir / f"{name}.err"
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.popen = subprocess.Popen(
                list(argv), stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=ROOT, start_new_session=True
            )

    def ready(self) -> dict[str, Any]:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            text = self.out_path.read_text(encoding="utf-8", errors="replace")
            if "\n" in text:
                return dict(json.loads(text.splitlines()[0]))
            if self.popen.poll() is not None:
                break
            time.sleep(0.05)
        tail = self.err_path.read_text(encoding="utf-8", errors="replace")[-800:]
        raise RuntimeError(f"{self.name}: no ready line within {READY_TIMEOUT:g}s; stderr: {tail}")

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def pin(cpu: int | None) -> list[str]:
    return ["taskset", "-c", str(cpu)] if cpu is not None else []


def wait_writable(url: str) -> float:
    start = time.monotonic()
    while time.monotonic() - start < WRITABLE_TIMEOUT:
        try:
            if httpx.get(url, trust_env=False, timeout=2.0).status_code == 200:
                return time.monotonic() - start
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer 200 within {WRITABLE_TIMEOUT:g}s")


def run_wrk(url: str, duration: int, connections: int, cpu: int | None) -> tuple[dict[str, Any], str]:
    argv = [*pin(cpu), "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", url]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60, check=True)
    return parse_wrk(proc.stdout), proc.stdout


def measure(url: str, pid: int, duration: int, connections: int, cpu: int | None) -> dict[str, Any]:
    load_before = loadavg()
    cpu_before = cpu_seconds(pid)
    result, _ = run_wrk(url, duration, connections, cpu)
    cpu_used = cpu_seconds(pid) - cpu_before
    result["load_before"] = load_before
    result["load_after"] = loadavg()
    result["server_cpu_s"] = round(cpu_used, 3)
    result["server_cpu_util"] = round(cpu_used / duration, 3)
    if result.get("requests"):
        per_req = cpu_used / result["requests"]
        result["server_cpu_us_per_req"] = round(per_req * 1e6, 2)
        if per_req > 0:
            # What one core would serve at this CPU cost if nothing else ran on it.
            result["projected_rps_dedicated_core"] = round(1.0 / per_req)
    return result


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ranked = sorted((r for r in runs if r.get("rps")), key=lambda r: float(r["rps"]))
    if not ranked:
        return {}
    best, median = ranked[-1], ranked[len(ranked) // 2]
    keys = ("rps", "p50_ms", "p99_ms", "server_cpu_util", "server_cpu_us_per_req", "load_before")
    return {
        "best": {k: best.get(k) for k in keys},
        "median": {k: median.get(k) for k in keys},
        "cpu_us_per_req_median": statistics.median(
            float(r["server_cpu_us_per_req"]) for r in ranked if "server_cpu_us_per_req" in r
        ),
        "projected_rps_dedicated_core_median": round(
            statistics.median(float(r["projected_rps_dedicated_core"]) for r in ranked
                              if "projected_rps_dedicated_core" in r)
        ),
        "met_best": bool(best["rps"] >= TARGET_RPS and (best.get("p99_ms") or 1e9) <= TARGET_P99_MS),
    }


def bench(args: argparse.Namespace, log: IO[str]) -> dict[str, Any]:
    multi = (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None
    server_cpu, load_cpu = (0, 1) if multi else (None, None)
    workdir = Path(tempfile.mkdtemp(prefix="bench-maywrite-"))
    topo = workdir / "topology.yaml"
    topo.write_text(TOPOLOGY, encoding="utf-8")
    py = sys.executable
    servers: list[Server] = []
    try:
        emu = Server(
            "emulator",
            [*pin(load_cpu), py, "-m", "sim.consul", "--datacenters", "dc1", "--http-port", "0"],
            workdir,
        )
        servers.append(emu)
        consul = str(emu.ready()["datacenters"]["dc1"])
        if args.server == "hello":
            argv = [*pin(server_cpu), py, str(Path(__file__).resolve()), "--serve-hello"]
        else:
            argv = [
                *pin(server_cpu), py, "-m", "coordinator", "run", "--config", str(topo), "--dc", "dc1",
                "--consul", consul, "--listen", "127.0.0.1:0", "--id", "bench-r1", "--log-level", "warning",
            ]
        replica = Server(args.server, argv, workdir)
        servers.append(replica)
        url = str(replica.ready()["listening"]).rstrip("/") + "/v1/may-write"
        writable_after = wait_writable(url)
        print(f"writable after {writable_after:.2f}s: {url}", file=log)
        run_wrk(url, args.warmup, args.connections, load_cpu)
        runs = []
        for k in range(args.runs):
            r = measure(url, replica.popen.pid, args.duration, args.connections, load_cpu)
            print(f"run {k + 1}: {json.dumps(r)}", file=log)
            runs.append(r)
        return {
            "label": args.label,
            "server": args.server,
            "tool": f"wrk -t1 -c{args.connections} -d{args.duration}s --latency",
            "pinning": {"replica_cpu": server_cpu, "wrk_and_emulator_cpu": load_cpu},
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "topology": "1 DC, 1 replica (its own quorum)",
            "runs": runs,
            "summary": summarize(runs),
            "target": f">= {TARGET_RPS:.0f} req/s and p99 <= {TARGET_P99_MS} ms",
            "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
    finally:
        for s in reversed(servers):
            s.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def serve_hello() -> int:
    """`--serve-hello`: a plain aiohttp hello-world under uvloop (the floor to compare with)."""
    import socket

    import uvloop
    from aiohttp import web

    body = b'{"allowed":true}'

    async def hello(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/v1/may-write", hello)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(1024)
        await web.SockSite(runner, sock).start()
        port = sock.getsockname()[1]
        print(json.dumps({"listening": f"http://127.0.0.1:{port}"}), flush=True)
        await asyncio.Event().wait()

    uvloop.run(main())
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=int, default=10)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--label", default="")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument(
        "--server", choices=("coordinator", "hello"), default="coordinator",
        help="hello = a plain aiohttp hello-world under uvloop instead of the replica (for comparison)",
    )
    p.add_argument(
        "--with-hello", action="store_true",
        help="afterwards run the hello-world the same way; stored under aiohttp_hello_same_session",
    )
    p.add_argument("--serve-hello", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve_hello:
        return serve_hello()
    if shutil.which("wrk") is None:
        print("wrk not found (Debian package: wrk)", file=sys.stderr)
        return 3
    result = bench(args, sys.stderr)
    if args.with_hello and args.server != "hello":
        hello = bench(argparse.Namespace(**{**vars(args), "server": "hello"}), sys.stderr)
        result["aiohttp_hello_same_session"] = {k: hello[k] for k in ("runs", "summary", "at")}
    text = json.dumps(result, indent=2)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
