"""A small real cluster on 127.0.0.1 without namespaces, for benchmarks that measure the
coordinator itself rather than partitions: one emulator process serving N DCs and
`replicas` `coordinator run` processes per DC (ports chosen by the kernel).

`LoopbackCluster` is a context manager; leaving it stops every process (SIGTERM, then
SIGKILL after `procs.STOP_GRACE`) and removes nothing else. Optional admin token (for POST /v1/fence).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from types import TracebackType

from coordinator.config.dump import dump_topology
from sim.lab.harness import _start_all
from sim.lab.procs import Proc, stop_all
from sim.lab.scenarios import topology


class LoopbackCluster:
    def __init__(self, n_dcs: int, replicas: int = 1, admin_token: str | None = None) -> None:
        self.n_dcs, self.replicas_per_dc, self.admin_token = n_dcs, replicas, admin_token
        self.dir = Path(tempfile.mkdtemp(prefix="cqlab-loop-"))
        self.topo = topology(n_dcs)
        self.emulator: Proc | None = None
        self.replicas: dict[str, Proc] = {}
        self.apis: dict[str, str] = {}
        """replica id -> API base URL."""
        self.consul: dict[str, str] = {}

    def __enter__(self) -> LoopbackCluster:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _start(self) -> None:
        py = sys.executable
        topo_path = self.dir / "topology.yaml"
        topo_path.write_text(dump_topology(self.topo), encoding="utf-8")
        names = ",".join(self.topo.names)
        argv = [py, "-m", "sim.consul", "--datacenters", names, "--http-port", "0"]
        self.emulator = Proc("emulator", argv, self.dir)
        self.consul = {str(k): str(v) for k, v in self.emulator.start()["datacenters"].items()}
        extra: list[str] = []
        if self.admin_token is not None:
            token_file = self.dir / "admin.token"
            token_file.write_text(self.admin_token, encoding="utf-8")
            extra = ["--admin-token-file", str(token_file)]
        for dc in self.topo.names:
            for k in range(1, self.replicas_per_dc + 1):
                rid = f"{dc}-r{k}"
                self.replicas[rid] = Proc(rid, [
                    py, "-m", "coordinator", "run", "--config", str(topo_path), "--dc", dc,
                    "--consul", self.consul[dc], "--listen", "127.0.0.1:0", "--id", rid, *extra,
                ], self.dir)
        _start_all(list(self.replicas.values()))
        self.apis = {rid: str(p.ready["listening"]).rstrip("/") for rid, p in self.replicas.items()}

    def close(self) -> None:
        """Replicas first, all at once (their graceful release needs the emulator)."""
        stop_all(list(self.replicas.values()))
        if self.emulator is not None:
            stop_all([self.emulator], grace=5.0)
