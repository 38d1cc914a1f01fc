"""A local federation of real processes: the Consul emulator plus `coordinator run` replicas.

Used by `coordinator demo`, the integration tests and the benchmarks. Synchronous on
purpose (subprocess + httpx.Client): callers are scripts that poll.

Everything is started through command lines only -- ``python -m sim.consul`` and
``python -m coordinator run`` -- so nothing here imports `sim` (the demo is the one
production module that starts it at all).

Invariants:

* every child runs in its own session (process group), with stdout and stderr in files
  under `workdir` (no pipe can fill up and block a child);
* `LocalCluster.stop` (also on ``__exit__``, whatever the exception) sends SIGTERM to every
  replica's group and waits for them up to the longest of their stop graces
  (`replica_stop_grace`: the bound `coordinator run` itself waits for a graceful stop,
  i.e. for the last "yes" to run out and the locks to be released, plus exit slack), then
  does the same for the emulator (`EMULATOR_STOP_TIMEOUT`; it goes last so that the
  replicas' release requests still reach Consul), then SIGKILLs the groups of the
  survivors and reaps them: no process outlives the cluster object's context;
* children inherit no CONSUL_* variable; each replica gets ``--consul`` explicitly.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from coordinator.config.load import load_topology
from coordinator.core.replica import ReplicaCore
from coordinator.daemon.runner import shutdown_grace

STARTUP_TIMEOUT = 30.0
EMULATOR_STOP_TIMEOUT = 5.0
EXIT_SLACK = 2.0
"""Added to a replica's shutdown grace: closing its API server and Consul client, and
the interpreter's exit, after the core finished (or the grace ran out)."""
HTTP_TIMEOUT = 2.0


class ClusterError(RuntimeError):
    """A process did not start or print its start-up line."""


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    out_path: Path
    err_path: Path
    info: dict[str, Any] = field(default_factory=dict)
    """The JSON start-up line the process printed."""

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def err_tail(self, limit: int = 2000) -> str:
        try:
            return self.err_path.read_text(errors="replace")[-limit:]
        except OSError:
            return ""


def _signal_group(proc: Proc, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.popen.pid, sig)


def replica_stop_grace(topology_path: str | Path, dc: str) -> float:
    """How long a `coordinator run` replica of `dc` may take to stop after SIGTERM: the
    bound it waits for its own core (`runner.shutdown_grace` of a ReplicaCore built from
    the same topology: the last "yes" running out, the release writes, the DC steps) plus
    `EXIT_SLACK`. A topology that no longer loads gets the runner's minimum grace."""
    try:
        core: object = ReplicaCore(load_topology(topology_path), dc, "stop-grace")
    except ValueError:  # ConfigError, or a DC no longer in the topology
        core = object()
    return shutdown_grace(core) + EXIT_SLACK


def _terminate(procs: Sequence[Proc], grace: float) -> None:
    """SIGTERM every live process's group, then wait for all of them up to `grace` seconds."""
    for proc in procs:
        if proc.alive:
            _signal_group(proc, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.popen.wait(timeout=max(deadline - time.monotonic(), 0.01))


class LocalCluster:
    """The emulator (all DCs in one process) and any number of replicas per DC."""

    def __init__(
        self,
        topology_path: str | Path,
        datacenters: Sequence[str],
        *,
        workdir: Path | None = None,
        emulator_args: Sequence[str] = (),
        python: str = sys.executable,
    ) -> None:
        self.topology_path = str(Path(topology_path).resolve())
        self.datacenters = tuple(datacenters)
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="coordinator-demo-"))
        self.emulator_args = tuple(emulator_args)
        self.python = python
        self.emulator: Proc | None = None
        self.consul: dict[str, str] = {}
        """DC name -> emulated Consul HTTP URL."""
        self.replicas: dict[str, Proc] = {}
        """Replica id -> process; `info["listening"]` is its API URL, `info["dc"]` its DC."""
        self.stop_graces: dict[str, float] = {}
        """Replica id -> how long `stop` waits for it after SIGTERM (`replica_stop_grace`)."""
        self.http = httpx.Client(trust_env=False, timeout=HTTP_TIMEOUT)
        self._leaders: dict[str, str] = {}

    # -- processes ---------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str], timeout: float) -> Proc:
        out_path = self.workdir / f"{name}.out"
        err_path = self.workdir / f"{name}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONSUL_")}
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            popen = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env, start_new_session=True
            )
        proc = Proc(name, popen, out_path, err_path)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = out_path.read_text(errors="replace")
            if "\n" in text:
                try:
                    proc.info = json.loads(text.split("\n", 1)[0])
                except ValueError:
                    raise ClusterError(f"{name}: bad start-up line {text[:200]!r}") from None
                return proc
            if popen.poll() is not None:
                raise ClusterError(f"{name} exited with {popen.returncode}: {proc.err_tail()}")
            time.sleep(0.02)
        _signal_group(proc, signal.SIGKILL)
        popen.wait()
        raise ClusterError(f"{name}: no start-up line within {timeout:g}s: {proc.err_tail()}")

    def start_emulator(self) -> dict[str, str]:
        argv = [self.python, "-m", "sim.consul", "--datacenters", ",".join(self.datacenters)]
        argv += ["--http-port", "0", *self.emulator_args]
        self.emulator = self._spawn("emulator", argv, STARTUP_TIMEOUT)
        self.consul = {str(k): str(v) for k, v in self.emulator.info["datacenters"].items()}
        return self.consul

    def start_replica(self, dc: str, replica_id: str, *, config: str | None = None) -> Proc:
        argv = [self.python, "-m", "coordinator", "run", "--config", config or self.topology_path]
        argv += ["--dc", dc, "--consul", self.consul[dc], "--listen", "127.0.0.1:0", "--id", replica_id]
        proc = self._spawn(replica_id, argv, STARTUP_TIMEOUT)
        self.replicas[replica_id] = proc
        self.stop_graces[replica_id] = replica_stop_grace(config or self.topology_path, dc)
        return proc

    def kill(self, replica_id: str, sig: signal.Signals = signal.SIGKILL) -> None:
        proc = self.replicas[replica_id]
        _signal_group(proc, sig)
        if sig == signal.SIGKILL:
            proc.popen.wait()

    def stop(self) -> None:
        """Graceful stop of every child (replicas first, then the emulator), SIGKILL after
        their graces; see the module docstring."""
        live = [rid for rid, proc in self.replicas.items() if proc.alive]
        grace = max((self.stop_graces.get(rid, EXIT_SLACK) for rid in live), default=0.0)
        _terminate([self.replicas[rid] for rid in live], grace)
        if self.emulator is not None:
            _terminate([self.emulator], EMULATOR_STOP_TIMEOUT)
        procs = [*self.replicas.values(), *([self.emulator] if self.emulator else [])]
        for proc in procs:
            _signal_group(proc, signal.SIGKILL)
            proc.popen.wait()
        self.http.close()

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- the coordinator API -----------------------------------------------------------

    def api(self, replica_id: str) -> str:
        return str(self.replicas[replica_id].info["listening"])

    def dc_of(self, replica_id: str) -> str:
        return str(self.replicas[replica_id].info["dc"])

    def replicas_of(self, dc: str) -> list[str]:
        return [r for r in self.replicas if self.dc_of(r) == dc]

    def may_write(self, replica_id: str) -> dict[str, Any] | None:
        """The may-write body of one replica, or None when it does not answer."""
        try:
            body = self.http.get(self.api(replica_id) + "/v1/may-write").json()
        except (httpx.HTTPError, ValueError):
            return None
        return body if isinstance(body, dict) else None

    def status(self, replica_id: str) -> dict[str, Any] | None:
        try:
            body = self.http.get(self.api(replica_id) + "/v1/status").json()
        except (httpx.HTTPError, ValueError):
            return None
        return body if isinstance(body, dict) else None

    def leader_replica(self, dc: str) -> str | None:
        """The live replica of `dc` that says it is the DC leader, if any."""
        for rid in self.replicas_of(dc):
            if self.replicas[rid].alive:
                st = self.status(rid)
                if st is not None and st.get("role") == "leader":
                    return rid
        return None

    def dc_answer(self, dc: str) -> dict[str, Any] | None:
        """The may-write answer of `dc` as its leader gives it (cheap: may-write calls only).

        Asks the replica that led last time first; an answer naming another replica as
        leader sends the question there. Falls back to any live replica's answer.
        """
        live = [r for r in self.replicas_of(dc) if self.replicas[r].alive]
        cached = self._leaders.get(dc)
        order = ([cached] if cached in live else []) + [r for r in live if r != cached]
        fallback: dict[str, Any] | None = None
        for rid in order:
            ans = self.may_write(rid)
            if ans is None:
                continue
            if ans.get("leader") == rid:
                self._leaders[dc] = rid
                return ans
            fallback = fallback or ans
            named = ans.get("leader")
            if isinstance(named, str) and named in live and named != rid:
                other = self.may_write(named)
                if other is not None and other.get("leader") == named:
                    self._leaders[dc] = named
                    return other
        return fallback

    # -- emulator fault control -----------------------------------------------------------

    def _control(self, path: str, params: Mapping[str, str] | None = None) -> None:
        base = next(iter(self.consul.values()))
        resp = self.http.put(base + "/_emulator/" + path, params=dict(params or {}))
        if resp.status_code != 200:
            raise ClusterError(f"emulator control {path}: HTTP {resp.status_code} {resp.text[:200]}")

    def link(self, src: str, dst: str, up: bool) -> None:
        """One direction: requests forwarded from `src` to `dst`."""
        self._control(f"link/{src}/{dst}", {"state": "up" if up else "down"})

    def isolate(self, dc: str) -> None:
        """Cut every link to and from `dc`."""
        for other in self.datacenters:
            if other != dc:
                self.link(dc, other, False)
                self.link(other, dc, False)

    def heal(self) -> None:
        self._control("heal")

    def consul_leader(self, dc: str, up: bool) -> None:
        self._control("leader", {"state": "up" if up else "down", "dc": dc})
