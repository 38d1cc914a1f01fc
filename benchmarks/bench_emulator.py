"""Benchmark the Consul emulator (`python -m sim.consul`) over real HTTP on 127.0.0.1.

Measures, against one emulator process serving one DC on a free port:

(a) KV GET throughput: requests/s of `GET /v1/kv/<key>` under a concurrent load
    generator. `wrk` (one thread) when installed, else an asyncio+aiohttp client in a
    separate process; the result names the tool used. With >= 2 CPUs every thread of the
    emulator is pinned to CPU 0 and the load generator to CPU 1, so "one emulator core"
    is literal.
(b) Blocking-query wake-up latency: N watchers (default 1,000) park a blocking
    `GET /v1/kv/<key>?index=X&wait=60s` on one key; one PUT wakes them all. Latency per
    watcher = its response's arrival time minus the PUT's send time, both read from one
    monotonic clock in this process. Repeated for W writes (default 20); p50/p99/max over
    all N x W samples. Like a Consul watch, each watcher first reads the key once without
    blocking to learn its index. The watchers are non-blocking sockets on one `selectors` loop in
    this process (pinned to CPU 1 when the emulator's threads are pinned to CPU 0), so the
    numbers include the client's own time to drain N responses (an upper bound on the
    server's); the client is kept lean (no asyncio, no HTTP library) to keep that small.

CPU time per operation (from /proc, user+system, 10 ms ticks) is reported next to the
wall-clock figures: it barely depends on what else the (shared) machine runs. For the
wake-ups it is summed over all W writes (resolution 10 ms / (N x W)), with the user/system
split. `--quiet-load L` waits (bounded by `--quiet-wait` seconds) for the 1-minute load
average to fall below L before measuring; the load is recorded either way.

Prints one JSON document and writes it to benchmarks/results/emulator.json.
Targets: >= 5,000 KV GET/s; wake-up p99 < 50 ms. Every loop is bounded; only 127.0.0.1.

Run:  .venv/bin/python benchmarks/bench_emulator.py [--duration 10] [--watchers 1000] [--writes 20]
          [--quiet-load 2.0 --quiet-wait 600]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import os
import platform
import re
import resource
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "tests"))
from emu_helpers import EmulatorProcess, http_reply_length, start_emulator  # noqa: E402

RESULT_PATH = REPO_ROOT / "benchmarks" / "results" / "emulator.json"
TARGET_GET_PER_S = 5000.0
TARGET_WAKEUP_P99_MS = 50.0
BENCH_KEY = "bench/emulator/key"
WATCH_KEY = "bench/emulator/watched"


def raise_fd_limit() -> int:
    """Raise RLIMIT_NOFILE to its hard limit (inherited by the emulator child)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of an ascending list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), math.ceil(q / 100.0 * len(sorted_values))))
    return sorted_values[rank - 1]


def cpu_split(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds consumed so far by process `pid` (Linux /proc; zeros elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def cpu_seconds(pid: int) -> float:
    """User+system CPU time consumed so far by process `pid` (Linux /proc; 0.0 elsewhere).

    CPU time, unlike wall time, barely depends on what else the machine runs, so it shows
    the emulator's own cost even on a busy host (resolution: one clock tick, ~10 ms).
    """
    return sum(cpu_split(pid))


def wait_for_quiet(max_load: float, max_wait: float) -> float:
    """Sleeps until the 1-minute load average is below `max_load` or `max_wait` seconds
    passed (bounded); returns the load average at the end."""
    deadline = time.monotonic() + max_wait
    while os.getloadavg()[0] >= max_load and time.monotonic() < deadline:
        time.sleep(5)
    return os.getloadavg()[0]


def pin(pid: int, cpu: int) -> bool:
    """Pin every thread of `pid` to one CPU when the machine has at least two; returns
    whether it did. All threads: the emulator's HTTP server (granian) does its socket
    work on Rust threads created at start-up, which pinning the pid alone would leave
    free to run on the load generator's core."""
    if (os.cpu_count() or 1) < 2 or not hasattr(os, "sched_setaffinity"):
        return False
    tasks = Path(f"/proc/{pid}/task")
    for tid in (int(t.name) for t in tasks.iterdir()) if tasks.is_dir() else (pid,):
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(tid, {cpu})
    return True


# ---------------------------------------------------------------- (a) KV GET throughput


_WRK_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _wrk_ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip())
    return float(m.group(1)) * _WRK_UNITS[m.group(2)] if m else float("nan")


def run_wrk(url: str, duration: float, connections: int) -> dict[str, Any]:
    """Run wrk (one thread) against `url` and parse its summary."""
    wrk = shutil.which("wrk")
    assert wrk is not None
    cmd = [wrk, "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency", url]
    if (os.cpu_count() or 1) >= 2 and shutil.which("taskset"):
        cmd = ["taskset", "-c", "1", *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60, check=True).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:(.*)", out)
    lat = {p: re.search(rf"^\s+{p}%\s+(\S+)", out, re.M) for p in ("50", "99")}
    return {
        "tool": "wrk -t1",
        "requests_per_s": float(rps.group(1)) if rps else float("nan"),
        "requests": int(total.group(1)) if total else 0,
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": errors.group(1).strip() if errors else "",
        "latency_p50_ms": _wrk_ms(lat["50"].group(1)) if lat["50"] else float("nan"),
        "latency_p99_ms": _wrk_ms(lat["99"].group(1)) if lat["99"] else float("nan"),
    }


async def _aiohttp_load(url: str, duration: float, connections: int) -> dict[str, Any]:
    ok = bad = 0
    deadline = time.monotonic() + duration
    conn = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=conn) as http:

        async def worker() -> None:
            nonlocal ok, bad
            while time.monotonic() < deadline:
                async with http.get(url) as resp:
                    await resp.read()
                    if resp.status == 200:
                        ok += 1
                    else:
                        bad += 1

        start = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.monotonic() - start
    return {
        "tool": "aiohttp (separate process)",
        "requests_per_s": ok / elapsed,
        "requests": ok,
        "non_2xx": bad,
    }


def run_aiohttp_loadgen(url: str, duration: float, connections: int) -> dict[str, Any]:
    """Run `_aiohttp_load` in a child process (so it does not share our core)."""
    cmd = [sys.executable, __file__, "--loadgen", url, str(duration), str(connections)]
    if (os.cpu_count() or 1) >= 2 and shutil.which("taskset"):
        cmd = ["taskset", "-c", "1", *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60, check=True).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def bench_kv_get(emu: EmulatorProcess, tool: str, duration: float, connections: int) -> dict[str, Any]:
    base = emu.urls["dc1"]
    url = f"{base}/v1/kv/{BENCH_KEY}"
    put = httpx.put(url, content=b"x" * 64, timeout=10)
    if put.status_code != 200:
        raise RuntimeError(f"seeding {url} failed: {put.status_code} {put.text}")
    use_wrk = tool == "wrk" or (tool == "auto" and shutil.which("wrk") is not None)
    cpu_before = cpu_seconds(emu.proc.pid)
    result = (
        run_wrk(url, duration, connections) if use_wrk else run_aiohttp_loadgen(url, duration, connections)
    )
    cpu_used = cpu_seconds(emu.proc.pid) - cpu_before
    result.update({"connections": connections, "duration_s": duration, "url_path": f"/v1/kv/{BENCH_KEY}"})
    if cpu_used > 0 and result.get("requests"):
        # What one fully available core would sustain: requests per emulator CPU-second.
        result["emulator_cpu_s"] = round(cpu_used, 2)
        result["emulator_cpu_us_per_get"] = round(cpu_used * 1e6 / result["requests"], 1)
        result["get_per_emulator_cpu_s"] = round(result["requests"] / cpu_used, 1)
    return result


# ---------------------------------------------------------------- (b) wake-up latency


def _reply_fields(buf: bytes) -> tuple[int, str]:
    """(status, X-Consul-Index) of the response at the start of `buf`."""
    head = buf[:buf.find(b"\r\n\r\n")].decode("latin-1").split("\r\n")
    fields = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:])}
    return int(head[0].split()[1]), fields.get("x-consul-index", "")


class _Watchers:
    """N keep-alive HTTP/1.1 connections parking blocking GETs, plus one for the writes.

    A deliberately lean client: non-blocking sockets and one `selectors` loop, no asyncio,
    no HTTP library. Per reply it only looks for the header end and Content-Length and
    stamps `perf_counter()` when the last byte arrived; status and X-Consul-Index are
    checked after the drain. So the client's own cost (a few us per reply) barely adds
    to the emulator's wake-up latency it measures.
    """

    def __init__(self, base: str, n: int) -> None:
        parts = urlsplit(base)
        assert parts.hostname is not None and parts.port is not None
        self.host = f"{parts.hostname}:{parts.port}"
        addr = (parts.hostname, parts.port)
        self.sel = selectors.DefaultSelector()
        self.socks: list[socket.socket] = []
        for _ in range(n):
            sock = socket.create_connection(addr, timeout=10)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setblocking(False)
            self.sel.register(sock, selectors.EVENT_READ)
            self.socks.append(sock)
        self.writer = socket.create_connection(addr, timeout=10)
        self.writer.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def close(self) -> None:
        self.sel.close()
        for sock in [*self.socks, self.writer]:
            sock.close()

    def call(self, method: str, path: str, body: bytes = b"") -> tuple[float, bytes]:
        """One request on the writer connection: (send time, whole reply)."""
        raw = (f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        sent_at = time.perf_counter()
        self.writer.sendall(raw)
        buf = b""
        while http_reply_length(buf) is None:
            chunk = self.writer.recv(65536)
            if not chunk:
                raise ConnectionError("writer connection closed")
            buf += chunk
        return sent_at, buf

    def park(self, index: str | None) -> None:
        """Every watcher sends a blocking GET at `index` (None: a plain GET)."""
        query = f"?index={index}&wait=60s" if index is not None else ""
        raw = f"GET /v1/kv/{WATCH_KEY}{query} HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode()
        for sock in self.socks:
            sock.sendall(raw)

    def prime(self) -> str:
        """Each watcher first reads the key without blocking to learn its index, as a
        Consul watch does before its first blocking query; returns that index."""
        self.park(None)
        _, replies = self.drain(timeout=60)
        seen = {_reply_fields(reply) for reply in replies.values()}
        if len(seen) != 1 or next(iter(seen))[0] != 200:
            raise RuntimeError(f"priming GETs disagree: {sorted(seen)[:3]}")
        return next(iter(seen))[1]

    def drain(self, timeout: float) -> tuple[dict[int, float], dict[int, bytes]]:
        """Waits (bounded) until every watcher has one whole reply: (arrival, reply) by fd."""
        bufs = {sock.fileno(): b"" for sock in self.socks}
        arrived: dict[int, float] = {}
        deadline = time.monotonic() + timeout
        while len(arrived) < len(self.socks):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.socks) - len(arrived)} watchers got no reply")
            for key, _ in self.sel.select(1.0):
                sock: socket.socket = key.fileobj  # type: ignore[assignment]
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("watcher connection closed")
                fd = key.fd
                bufs[fd] += chunk
                if fd not in arrived and http_reply_length(bufs[fd]) is not None:
                    arrived[fd] = time.perf_counter()
        return arrived, bufs

    def early(self) -> int:
        """How many watchers already have reply bytes (a parked GET that returned early)."""
        return len(self.sel.select(0))


def _one_round(watchers: _Watchers, index: str, round_no: int, settle: float, server_pid: int,
               split: list[tuple[float, float]]) -> tuple[list[float], int, str]:
    """Park one blocking GET per connection at `index`, write once; (latencies_ms, early, index)."""
    watchers.park(index)
    time.sleep(settle)
    early = watchers.early()
    gc.collect()
    gc.disable()  # the measuring client's own collector must not stretch the samples
    try:
        before = cpu_split(server_pid)
        sent_at, put = watchers.call("PUT", f"/v1/kv/{WATCH_KEY}", f"round-{round_no}".encode())
        arrived, replies = watchers.drain(timeout=120)
        after = cpu_split(server_pid)
    finally:
        gc.enable()
    if _reply_fields(put)[0] != 200:
        raise RuntimeError(f"write got {put[:60]!r}")
    split.append((after[0] - before[0], after[1] - before[1]))
    new_index = index
    for reply in replies.values():
        status, seen = _reply_fields(reply)
        if status != 200:
            raise RuntimeError(f"watcher got HTTP {status}")
        if seen and int(seen) > int(new_index):
            new_index = seen
    latencies = [(t - sent_at) * 1000.0 for t in arrived.values()]
    if early:
        latencies = [lat for lat in latencies if lat >= 0.0]
    return latencies, early, new_index


def _wakeup(base: str, n: int, writes: int, settle: float, server_pid: int) -> dict[str, Any]:
    watchers = _Watchers(base, n)
    samples: list[float] = []
    round_max: list[float] = []
    split: list[tuple[float, float]] = []
    early_total = 0
    try:
        watchers.call("PUT", f"/v1/kv/{WATCH_KEY}", b"init")
        index = watchers.prime()
        for r in range(writes):
            lat, early, index = _one_round(watchers, index, r, settle, server_pid, split)
            samples.extend(lat)
            round_max.append(round(max(lat), 1) if lat else float("nan"))
            early_total += early
    finally:
        watchers.close()
    samples.sort()
    woken = n * len(split)
    cpu_ms = [(u + t) * 1000.0 for u, t in split]
    user_s, sys_s = sum(u for u, _ in split), sum(t for _, t in split)
    return {
        "watchers": n,
        "writes": writes,
        "samples": len(samples),
        "early_returns": early_total,
        "settle_s": settle,
        "p50_ms": round(percentile(samples, 50), 3),
        "p99_ms": round(percentile(samples, 99), 3),
        "max_ms": round(samples[-1], 3) if samples else float("nan"),
        "per_write_max_ms": round_max,
        "mean_ms": round(statistics.fmean(samples), 3) if samples else float("nan"),
        "emulator_cpu_ms_per_write_median": round(statistics.median(cpu_ms), 1) if cpu_ms else None,
        "emulator_cpu_us_per_woken_watcher": (
            round(statistics.median(cpu_ms) * 1000.0 / n, 1) if cpu_ms and n else None
        ),
        "emulator_cpu_us_per_woken_watcher_mean": round((user_s + sys_s) * 1e6 / woken, 1) if woken else None,
        "emulator_user_us_per_woken_watcher_mean": round(user_s * 1e6 / woken, 1) if woken else None,
        "emulator_sys_us_per_woken_watcher_mean": round(sys_s * 1e6 / woken, 1) if woken else None,
        "client": "non-blocking sockets + selectors, one process, one keep-alive connection per watcher",
    }


def bench_wakeup(emu: EmulatorProcess, watchers: int, writes: int, settle: float,
                 pinned: bool) -> dict[str, Any]:
    """Runs the watchers in this process, on CPU 1 when the emulator is pinned to CPU 0."""
    before = os.sched_getaffinity(0) if pinned else None
    if pinned:
        os.sched_setaffinity(0, {1})
    try:
        result = _wakeup(emu.urls["dc1"], watchers, writes, settle, emu.proc.pid)
    finally:
        if before is not None:
            os.sched_setaffinity(0, before)
    result["client_pinned_to_cpu1"] = pinned
    return result


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of KV GET load")
    parser.add_argument("--connections", type=int, default=64, help="concurrent GET connections")
    parser.add_argument("--tool", choices=("auto", "wrk", "aiohttp"), default="auto")
    parser.add_argument("--watchers", type=int, default=1000)
    parser.add_argument("--writes", type=int, default=20)
    parser.add_argument(
        "--settle", type=float, default=2.0, help="seconds for watchers to park before a write"
    )
    parser.add_argument("--quiet-load", type=float, default=None,
                        help="wait until the 1-minute load average is below this before measuring")
    parser.add_argument("--quiet-wait", type=float, default=600.0,
                        help="give up waiting for --quiet-load after this many seconds")
    parser.add_argument("--output", type=Path, default=RESULT_PATH)
    parser.add_argument(
        "--loadgen", nargs=3, metavar=("URL", "DURATION", "CONNECTIONS"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)

    if args.loadgen:
        url, duration, connections = args.loadgen[0], float(args.loadgen[1]), int(args.loadgen[2])
        print(json.dumps(asyncio.run(_aiohttp_load(url, duration, connections))))
        return 0

    fd_limit = raise_fd_limit()
    if args.quiet_load is not None:
        wait_for_quiet(args.quiet_load, args.quiet_wait)
    load_before = round(os.getloadavg()[0], 2)
    emu = start_emulator(["dc1"], http_port=0)
    try:
        pinned = pin(emu.proc.pid, 0)
        kv_get = bench_kv_get(emu, args.tool, args.duration, args.connections)
        wakeup = bench_wakeup(emu, args.watchers, args.writes, args.settle, pinned)
    finally:
        code = emu.stop()
    result = {
        "benchmark": "emulator",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "fd_limit": fd_limit,
            "loadavg_1m_before": load_before,
            "loadavg_1m_after": round(os.getloadavg()[0], 2),
        },
        "emulator_pinned_to_cpu0": pinned,
        "emulator_exit_code": code,
        "kv_get": kv_get,
        "wakeup": wakeup,
        "targets": {"kv_get_per_s_min": TARGET_GET_PER_S, "wakeup_p99_ms_max": TARGET_WAKEUP_P99_MS},
        "meets_targets": {
            "kv_get": kv_get["requests_per_s"] >= TARGET_GET_PER_S and kv_get["non_2xx"] == 0,
            "wakeup_p99": wakeup["p99_ms"] < TARGET_WAKEUP_P99_MS and wakeup["early_returns"] == 0,
        },
    }
    text = json.dumps(result, indent=2)
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
