"""Real processes: the catch-up hook's verdict, and `coordinator exec` with its own replica.

Hook: the topology's catch_up hook is a script that fails for the DCs listed in a flag
file. While it fails for dc1, dc1 rejoins as far as catching-up and never writable; once
it succeeds, dc1 becomes writable with a higher token.

Exec: dc2/dc3 run `coordinator run`; dc1 is `coordinator exec --config ... --dc dc1` (an
in-process replica) supervising a child that records its token and pid.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from procs import TOPOLOGY, allowed, running_cluster, wait_for

pytestmark = pytest.mark.integration

HOOK = """
import os, sys
failing = open(sys.argv[1]).read().split()
sys.exit(1 if os.environ.get("COORDINATOR_DC") in failing else 0)
"""


def hook_topology(tmp_path: Path, flag: Path) -> Path:
    script = tmp_path / "hook.py"
    script.write_text(HOOK)
    text = TOPOLOGY.read_text().replace(
        "  hook: null", f"  hook: {json.dumps([sys.executable, str(script), str(flag)])}"
    )
    assert "hook: [" in text
    path = tmp_path / "topology.yaml"
    path.write_text(text)
    return path


def test_failing_hook_keeps_dc_fenced_until_it_succeeds(tmp_path: Path) -> None:
    flag = tmp_path / "failing"
    flag.write_text("")
    topo = hook_topology(tmp_path, flag)
    with running_cluster({"dc1": ["dc1-a"], "dc2": ["dc2-a"], "dc3": ["dc3-a"]}, topo) as c:
        before = int((c.dc_answer("dc1") or {})["token"])
        flag.write_text("dc1")
        c.isolate("dc1")
        wait_for(lambda: not allowed(c, "dc1"), "dc1 fenced")
        c.heal()
        states: set[str] = set()
        end = time.monotonic() + 6.0
        while time.monotonic() < end:
            st = c.status("dc1-a") or {}
            states.add(str(st.get("dc_state")))
            assert not st.get("allowed"), f"dc1 writable although its hook fails: {st.get('reason')}"
            time.sleep(0.05)
        assert states <= {"fenced", "catching-up"}
        assert "catching-up" in states, "the hook was never tried"
        assert allowed(c, "dc2") and allowed(c, "dc3")
        flag.write_text("")
        wait_for(lambda: allowed(c, "dc1"), "dc1 writable once the hook succeeds")
        assert int((c.dc_answer("dc1") or {})["token"]) > before


CHILD = """
import os, sys, time
with open(sys.argv[1], "a") as fh:
    fh.write(f"{os.environ['COORDINATOR_TOKEN']} {os.getpid()}\\n")
while True:
    time.sleep(0.05)
"""


def _runs(out: Path) -> list[tuple[int, int]]:
    if not out.exists():
        return []
    return [(int(t), int(p)) for t, p in (line.split() for line in out.read_text().splitlines())]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_exec_with_in_process_replica_follows_partitions(tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    out = tmp_path / "runs.txt"
    with running_cluster({"dc2": ["dc2-a"], "dc3": ["dc3-a"]}, wait_writable=False) as c:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONSUL_")}
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "coordinator",
                "exec",
                "--config",
                str(TOPOLOGY),
                "--dc",
                "dc1",
                "--consul",
                c.consul["dc1"],
                "--id",
                "dc1-exec",
                "--",
                sys.executable,
                str(script),
                str(out),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=True,
        )
        try:
            wait_for(lambda: len(_runs(out)) == 1, "child started by exec")
            token1, pid1 = _runs(out)[0]
            c.isolate("dc1")
            wait_for(lambda: not _alive(pid1), "child stopped when dc1 is cut off")
            assert proc.poll() is None
            c.heal()
            wait_for(lambda: len(_runs(out)) == 2, "child restarted after heal")
            token2, pid2 = _runs(out)[1]
            assert token2 > token1
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
            assert proc.returncode == 0, err
            assert not _alive(pid2)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
