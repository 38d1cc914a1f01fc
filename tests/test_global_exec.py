"""`coordinator exec --global NAME`: CMD runs in the DC that holds the cross-DC lock, with
the lock's term as COORDINATOR_TOKEN; a DC that does not hold it does not run CMD."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from coordinator.demo_cluster import LocalCluster
from coordinator.locks_client import LocksClient

DCS = ("dc1", "dc2", "dc3")
TOPO = "cluster: mail\ndatacenters:\n  dc1: {}\n  dc2: {}\n  dc3: {}\nglobal_locks:\n  email: {}\n"


def _exec(api: str, out: Path, timeout: float) -> subprocess.Popen[bytes]:
    cmd = f'echo "$COORDINATOR_TOKEN $COORDINATOR_DC" > {out}'
    argv = [sys.executable, "-m", "coordinator", "exec", "--global", "email", "--api", api, "--once"]
    return subprocess.Popen([*argv, "--", "sh", "-c", cmd], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_exec_global_runs_only_in_the_holder_dc(tmp_path: Path) -> None:
    topo = tmp_path / "t.yaml"
    topo.write_text(TOPO)
    with LocalCluster(topo, DCS, workdir=tmp_path) as c:
        c.start_emulator()
        for dc in DCS:
            c.start_replica(dc, f"{dc}-r1")
        holder = None
        with LocksClient([c.api(f"{dc}-r1") for dc in DCS]) as locks:
            end = time.monotonic() + 20
            while holder is None and time.monotonic() < end:
                st = locks.get("email")
                holder = st.dc if st.held else None
                time.sleep(0.05)
            assert holder is not None and st.term is not None
            term = st.term
        procs = {dc: _exec(c.api(f"{dc}-r1"), tmp_path / f"{dc}.out", 10.0) for dc in DCS}
        try:
            assert procs[holder].wait(timeout=20) == 0
            assert (tmp_path / f"{holder}.out").read_text().split() == [str(term), holder]
            time.sleep(1.0)
            for dc in DCS:
                if dc != holder:
                    assert procs[dc].poll() is None, "a non-holder DC must keep waiting"
                    assert not (tmp_path / f"{dc}.out").exists()
        finally:
            for p in procs.values():
                if p.poll() is None:
                    p.terminate()
                    p.wait(timeout=10)
