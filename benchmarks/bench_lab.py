"""Partition-lab measurements (needs root for the cut/fail-over part).

    .venv/bin/python benchmarks/bench_lab.py [--cuts 20] [--failovers 10] [--clients 1000]
        [--only cuts,fanout,resources] [--out benchmarks/results/lab.json]

- cuts: in the lab (namespaces, real drops), isolate one DC (rotating dc1..dc3) `--cuts`
  times; fence latency = cut -> that DC's may-write says no, rejoin latency = heal ->
  writable after the catch-up hook (a real `sleep 0.3`); false fences on the majority
  side; then `--failovers` SIGKILLs of dc1's leader replica: kill -> dc1 writable again.
  Latencies come from the recorded history (sim.lab.analyze), which is also checked.
- fanout: `--clients` long-polls parked on one replica (loopback cluster); POST /v1/fence;
  per client: fence request sent -> its long-poll answered "no".
- resources: RSS and CPU of each replica over 10 s with a 3-DC and a 5-DC topology (each
  replica probes every other DC), and the Consul requests/s it causes (its own
  consul_requests_total counter), against the emulator.

Results are merged into the JSON file under "cuts", "failover", "fanout", "resources".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sim.checker import check_history
from sim.lab import net
from sim.lab.analyze import fault_latencies, percentile
from sim.lab.harness import Lab, LabConfig
from sim.lab.loopback import LoopbackCluster
from sim.lab.run import Driver
from sim.lab.scenarios import topology
from sim.world.faults import FaultSpec

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "lab.json"


def stats(values: list[float], scale: float = 1000.0) -> dict[str, Any]:
    def q(p: float) -> float | None:
        v = percentile(values, p)
        return None if v is None else round(v * scale, 1)

    return {"n": len(values), "p50_ms": q(50), "p99_ms": q(99), "max_ms": q(100)}


async def _cuts(n_cuts: int, n_failovers: int, run_dir: Path, status: float | None = None) -> dict[str, Any]:
    topo = topology(3)
    lab = Lab(LabConfig(topo, {d: 2 for d in topo.names}, run_dir, "bench-cuts", status_interval=status))
    failover: list[float] = []
    loads = [os.getloadavg()[0]]
    async with lab:
        names = list(topo.names)
        if await lab.wait_until(names, True, 60) is None:
            raise RuntimeError("lab never became writable")
        driver = Driver(lab)
        fid = 0
        for i in range(n_cuts):
            dc = names[i % len(names)]
            fid += 1
            act = await driver.start(FaultSpec("isolate", at=0.0, dcs=(dc,)), fid)
            await lab.wait_until([dc], False, 15)
            await asyncio.sleep(1.0)
            await driver.end(act)
            await lab.wait_until(names, True, 30)
            await asyncio.sleep(1.5)
        for _ in range(n_failovers):
            fid += 1
            act = await driver.start(FaultSpec("crash", at=0.0, dcs=("dc1",), replica="leader"), fid)
            t_kill = lab.rec.now()
            t_back = await lab.wait_until(["dc1"], True, 30)
            if t_back is not None:
                failover.append(t_back - t_kill)
            await driver.end(act)
            await asyncio.sleep(3.0)
    history = lab.history
    loads.append(os.getloadavg()[0])
    lat = fault_latencies(history)
    violations = check_history(history)
    return {
        "cuts": {
            "n_cuts": n_cuts, "fence": stats(lat.fence), "rejoin": stats(lat.rejoin),
            "false_fences_majority": lat.false_fences, "unfenced": lat.unfenced,
            "violations": [v.invariant for v in violations], "history": str(run_dir / "history.jsonl"),
            "load_avg_1m_start_end": loads,
        },
        "failover": {"what": "SIGKILL of dc1's leader replica -> dc1 writable (other replica)",
                     **stats(failover)},
    }


class _LongPoll(asyncio.Protocol):
    """One parked long-poll on a raw socket: stamps the arrival of the response's first
    bytes (perf_counter) in data_received, so the client adds ~us per response instead of
    an HTTP client's parsing (which, for 1,000 responses in one process, was ~1/2 of what
    the aiohttp-client version of this benchmark measured)."""

    def __init__(self, request: bytes, done: asyncio.Future[float]) -> None:
        self.request, self.done = request, done

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        if not self.done.done():
            self.done.set_result(time.perf_counter())

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(ConnectionError(f"closed before an answer: {exc}"))


async def _fanout(n_clients: int, client: str = "raw") -> dict[str, Any]:
    """`n_clients` long-polls parked on one replica; POST /v1/fence; per client: fence sent
    -> first byte of its answer. client "raw": asyncio.Protocol sockets (default);
    "aiohttp": one aiohttp session (as first measured; includes its parsing)."""
    token = "bench-admin-token"
    with LoopbackCluster(3, 1, admin_token=token) as cluster:
        api = cluster.apis["dc1-r1"]
        host, port = api.split("//", 1)[1].rsplit(":", 1)
        async with httpx.AsyncClient(trust_env=False) as http:
            body: dict[str, Any] = {}
            for _ in range(300):
                body = (await http.get(f"{api}/v1/may-write")).json()
                if body.get("allowed"):
                    break
                await asyncio.sleep(0.1)
            index = int(body["index"])
            loop = asyncio.get_running_loop()
            path = f"/v1/may-write?index={index}&wait=60s"
            t0 = 0.0
            received: list[float] = []
            early = 0
            if client == "raw":
                request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
                dones: list[asyncio.Future[float]] = []
                transports = []
                for _ in range(n_clients):
                    done: asyncio.Future[float] = loop.create_future()
                    tr, _p = await loop.create_connection(partial(_LongPoll, request, done), host, int(port))
                    dones.append(done)
                    transports.append(tr)
                await asyncio.sleep(3.0)
                early = sum(1 for d in dones if d.done())
                t0 = time.perf_counter()
                await http.post(f"{api}/v1/fence", headers={"Authorization": f"Bearer {token}"})
                stamps = await asyncio.wait_for(asyncio.gather(*dones, return_exceptions=True), 30)
                received = [s - t0 for s in stamps if isinstance(s, float) and s >= t0]
                for tr in transports:
                    tr.close()
            else:
                connector = aiohttp.TCPConnector(limit=0)
                async with aiohttp.ClientSession(connector=connector) as session:

                    async def poll() -> None:
                        nonlocal early
                        async with session.get(f"{api}{path}") as resp:
                            await resp.read()
                        if t0 == 0.0:
                            early += 1
                        else:
                            received.append(time.perf_counter() - t0)

                    tasks = [asyncio.create_task(poll()) for _ in range(n_clients)]
                    await asyncio.sleep(3.0)
                    t0 = time.perf_counter()
                    await http.post(f"{api}/v1/fence", headers={"Authorization": f"Bearer {token}"})
                    await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)
    return {"clients": n_clients, "client": client, "answered_before_fence": early,
            "load_avg_1m": os.getloadavg()[0], **stats(received)}


def _proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    m = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return round(int(m.group(1)) / 1024, 1) if m else 0.0


def _consul_requests(api: str) -> float:
    text = httpx.get(f"{api}/metrics", trust_env=False).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("coordinator_consul_requests_total") or
               (line.split("{")[0].endswith("consul_requests_total") and not line.startswith("#")))


def _resources(n_dcs: int, window: float = 10.0) -> dict[str, Any]:
    with LoopbackCluster(n_dcs, 1) as cluster:
        time.sleep(5.0)
        load = os.getloadavg()[0]
        pids = {rid: p.pid for rid, p in cluster.replicas.items() if p.pid is not None}
        cpu0 = {rid: _proc_cpu(pid) for rid, pid in pids.items()}
        req0 = {rid: _consul_requests(cluster.apis[rid]) for rid in pids}
        time.sleep(window)
        cpu = [(_proc_cpu(pid) - cpu0[rid]) / window * 100 for rid, pid in pids.items()]
        req = [(_consul_requests(cluster.apis[rid]) - req0[rid]) / window for rid in pids]
        rss = [_rss_mb(pid) for pid in pids.values()]
    return {
        "dcs": n_dcs, "cpu_percent_mean": round(sum(cpu) / len(cpu), 2),
        "cpu_percent_max": round(max(cpu), 2),
        "rss_mb_mean": round(sum(rss) / len(rss), 1), "consul_req_per_s_mean": round(sum(req) / len(req), 1),
        "load_avg_1m_before": load,
    }


def merge(out: Path, results: dict[str, Any]) -> None:
    data: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {}
    data.update(results)
    data["machine"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=2) + "\n")


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--cuts", type=int, default=20)
    p.add_argument("--failovers", type=int, default=10)
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--status-interval", type=float, default=None,
                   help="cuts: also sample every replica's /v1/status into status.jsonl (diagnostics)")
    p.add_argument("--fanout-client", choices=("raw", "aiohttp"), default="raw")
    p.add_argument("--only", default="cuts,fanout,resources")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args()
    parts = set(args.only.split(","))
    results: dict[str, Any] = {}
    if "cuts" in parts:
        reason = net.unavailable_reason()
        if reason is not None:
            print(f"skipping cuts: {reason}", file=sys.stderr)
        else:
            run_dir = Path(tempfile.mkdtemp(prefix="cqlab-bench-"))
            with net.lab_lock():
                try:
                    cuts = _cuts(args.cuts, args.failovers, run_dir, args.status_interval)
                    results.update(asyncio.run(cuts))
                finally:
                    net.teardown()
            print(json.dumps({k: results[k] for k in ("cuts", "failover")}, indent=2), flush=True)
    if "fanout" in parts:
        results["fanout"] = asyncio.run(_fanout(args.clients, args.fanout_client))
        print(json.dumps(results["fanout"]), flush=True)
    if "resources" in parts:
        results["resources"] = {"idle_3dc": _resources(3), "probing_5dc": _resources(5)}
        print(json.dumps(results["resources"]), flush=True)
    merge(args.out, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
