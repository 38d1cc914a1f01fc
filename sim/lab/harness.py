"""The lab harness: network, processes, watchers; always torn down.

`Lab` is an async context manager. Entering it builds the namespaces (sim.lab.net), starts
the protected resource (root namespace, 127.0.0.1), one emulated Consul DC per namespace
(``python -m sim.consul --datacenters dcN --bind 0.0.0.0 --peer ...`` with the peers'
WAN addresses) and the coordinator replicas (``coordinator run`` inside the DC's
namespace, talking to their Consul on 127.0.0.1, API on the management address), then
one `ReplicaWatch` per replica. Leaving it - normally, on an exception, or on
Ctrl-C/SIGTERM (the CLI turns SIGTERM into KeyboardInterrupt) - stops the watchers,
stops every process, deletes every ``cqlab`` namespace and link, and writes the merged
history ``history.jsonl`` into the run directory.

Process control used by faults: `kill_replica`, `restart_replica`, `pause_replica`,
`resume_replica`, and the same for a DC's Consul (`*_consul`).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType

import httpx

from coordinator.config.dump import dump_topology
from coordinator.core.topology import CatchUp, Topology
from sim.history import Event, meta_event
from sim.lab.net import LabNet
from sim.lab.observe import Recorder, ReplicaWatch
from sim.lab.procs import Proc, stop_all
from sim.lab.status import StatusSampler

CONSUL_PORT = 8500
API_PORT = 8787
DEFAULT_HOOK = ("sleep", "0.3")
"""A real catch-up hook process: a rejoining DC runs it before it may write again."""


@dataclass(frozen=True)
class LabConfig:
    topology: Topology
    replicas: dict[str, int]
    run_dir: Path
    scenario: str = "lab"
    forward_timeout: float = 2.0
    write_interval: float = 0.05
    status_interval: float | None = None
    """Sample every replica's /v1/status into status.jsonl this often (diagnostics; None: off)."""


def replica_ids(dc: str, count: int) -> list[str]:
    return [f"{dc}-r{k}" for k in range(1, count + 1)]


def _start_all(procs: list[Proc]) -> None:
    """Start processes in parallel (each waits for its own ready line); re-raises the first failure."""
    with ThreadPoolExecutor(max_workers=max(1, len(procs))) as pool:
        for future in [pool.submit(p.start) for p in procs]:
            future.result()


class Lab:
    def __init__(self, cfg: LabConfig) -> None:
        topo = cfg.topology
        if topo.catch_up.hook is None and not topo.catch_up.wait_for_admin:
            hook = CatchUp(hook=DEFAULT_HOOK, copy_prefixes=topo.catch_up.copy_prefixes)
            topo = replace(topo, catch_up=hook)
        self.cfg = replace(cfg, topology=topo)
        self.topo = topo
        self.dir = cfg.run_dir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.logdir = self.dir / "logs"
        self.logdir.mkdir(exist_ok=True)
        self.net = LabNet(topo.names)
        self.rec = Recorder(self.dir / "history.harness.jsonl")
        self.consul: dict[str, Proc] = {}
        self.replicas: dict[str, dict[str, Proc]] = {}
        self.watches: dict[str, dict[str, ReplicaWatch]] = {}
        self.resource: Proc | None = None
        self.resource_log = self.dir / "resource.jsonl"
        self.client = httpx.AsyncClient(trust_env=False, limits=httpx.Limits(max_connections=200))
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.history: list[Event] = []

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Lab:
        try:
            await asyncio.to_thread(self._start_sync)
        except BaseException:
            await asyncio.to_thread(self._stop_sync)
            raise
        for dc, watches in self.watches.items():
            for watch in watches.values():
                self._tasks.append(asyncio.create_task(watch.run(self._stop), name=f"watch-{dc}"))
        if self.cfg.status_interval:
            apis = {rid: w.api for ws in self.watches.values() for rid, w in ws.items()}
            path = self.dir / "status.jsonl"
            sampler = StatusSampler(self.rec, self.client, apis, path, self.cfg.status_interval)
            self._tasks.append(asyncio.create_task(sampler.run(self._stop), name="status"))
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        with contextlib.suppress(BaseException):
            await self.client.aclose()
        self.rec.emit("end")
        await asyncio.to_thread(self._stop_sync)

    def _start_sync(self) -> None:
        py = sys.executable
        self.rec.add(meta_event(self.topo, None, "lab", self.cfg.replicas, self.cfg.scenario))
        topo_path = self.dir / "topology.yaml"
        topo_path.write_text(dump_topology(self.topo), encoding="utf-8")
        self.net.setup()
        self.resource_log.write_text("", encoding="utf-8")
        self.resource = Proc(
            "resource",
            [py, "-m", "sim.lab.resource", "--listen", "127.0.0.1:0", "--log", str(self.resource_log)],
            self.logdir,
        )
        resource_url = str(self.resource.start()["listening"])
        for name in self.net.dcs:
            peers = [
                f"--peer={other}=http://{o.wan_ip}:{CONSUL_PORT}"
                for other, o in self.net.dcs.items() if other != name
            ]
            argv = self.net.ns_exec(name, [
                py, "-m", "sim.consul", "--datacenters", name, "--bind", "0.0.0.0",
                "--http-port", str(CONSUL_PORT), "--forward-timeout", str(self.cfg.forward_timeout), *peers,
            ])
            self.consul[name] = Proc(f"consul-{name}", argv, self.logdir)
        for name, dcnet in self.net.dcs.items():
            self.replicas[name] = {}
            self.watches[name] = {}
            for k, rid in enumerate(replica_ids(name, self.cfg.replicas.get(name, 1))):
                port = API_PORT + k
                argv = self.net.ns_exec(name, [
                    py, "-m", "coordinator", "run", "--config", str(topo_path), "--dc", name,
                    "--consul", f"http://127.0.0.1:{CONSUL_PORT}", "--listen", f"0.0.0.0:{port}", "--id", rid,
                ])
                proc = Proc(rid, argv, self.logdir)
                self.replicas[name][rid] = proc
                self.watches[name][rid] = ReplicaWatch(
                    self.rec, self.client, name, rid, f"http://{dcnet.mgmt_ip}:{port}", resource_url,
                    self.cfg.write_interval,
                )
                self.watches[name][rid].announce()
        _start_all(list(self.consul.values()))
        for name in self.consul:
            self.rec.emit("consul", dc=name, leader=True)
        _start_all([p for dc in self.replicas.values() for p in dc.values()])

    def _stop_sync(self) -> None:
        """Replicas first (their graceful release needs their Consul), then Consul."""
        with contextlib.suppress(Exception):
            stop_all([p for dc in self.replicas.values() for p in dc.values()])
        with contextlib.suppress(Exception):
            stop_all(list(self.consul.values()), grace=5.0)
        if self.resource is not None:
            self.resource.stop()
        self.net.teardown()
        self.rec.close()
        self.history = self.rec.merge(self.resource_log, self.dir / "history.jsonl")

    # -- observation -----------------------------------------------------------------------

    def writable(self, dc: str) -> list[str]:
        return [rid for rid, w in self.watches[dc].items() if w.allowed]

    def leader(self, dc: str) -> str | None:
        """The replica the DC's replicas currently name as leader (None: unknown)."""
        for rid, w in self.watches[dc].items():
            if w.override is None and w.leader == rid:
                return rid
        for w in self.watches[dc].values():
            if w.override is None and w.leader in self.watches[dc]:
                return w.leader
        return None

    def resolve(self, dc: str, which: str) -> str:
        ids = list(self.replicas[dc])
        if which in ids:
            return which
        lead = self.leader(dc) or ids[0]
        if which == "follower":
            others = [r for r in ids if r != lead]
            return others[0] if others else lead
        return lead

    async def wait_until(self, predicate_dcs: list[str], writable: bool, timeout: float) -> float | None:
        """Wait until each DC in `predicate_dcs` is (writable) / is not (not writable);
        returns the lab time it happened or None on timeout. Polls every 10 ms (bounded)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(bool(self.writable(dc)) == writable for dc in predicate_dcs):
                return self.rec.now()
            await asyncio.sleep(0.01)
        return None

    # -- process faults ----------------------------------------------------------------------

    def kill_replica(self, dc: str, rid: str) -> None:
        self.replicas[dc][rid].kill()
        self.watches[dc][rid].mark("down")

    async def restart_replica(self, dc: str, rid: str) -> None:
        await asyncio.to_thread(self.replicas[dc][rid].start)
        self.watches[dc][rid].mark(None)

    def pause_replica(self, dc: str, rid: str) -> None:
        self.replicas[dc][rid].signal(signal.SIGSTOP)
        self.watches[dc][rid].mark("paused")

    def resume_replica(self, dc: str, rid: str) -> None:
        self.replicas[dc][rid].signal(signal.SIGCONT)
        self.watches[dc][rid].mark(None)

    def consul_down(self, dc: str, how: str) -> None:
        """how: "kill" (SIGKILL) or "pause" (SIGSTOP)."""
        proc = self.consul[dc]
        if how == "kill":
            proc.kill()
        else:
            proc.signal(signal.SIGSTOP)
        self.rec.emit("consul", dc=dc, leader=False)

    async def consul_up(self, dc: str, how: str) -> None:
        proc = self.consul[dc]
        if how == "kill":
            await asyncio.to_thread(proc.start)
        else:
            proc.signal(signal.SIGCONT)
        self.rec.emit("consul", dc=dc, leader=True)

    async def consul_leader(self, dc: str, up: bool) -> None:
        state = "up" if up else "down"
        url = f"http://{self.net.dcs[dc].mgmt_ip}:{CONSUL_PORT}/_emulator/leader?state={state}"
        await self.client.put(url, timeout=5.0)
        self.rec.emit("consul", dc=dc, leader=up)
