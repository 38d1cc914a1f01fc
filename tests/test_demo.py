"""`coordinator demo --fast` end to end: real emulator and coordinator subprocesses.

Asserts the exit code and the story lines, never how long a step took; and that no process
the demo started is left behind.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.integration


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_demo_tells_the_whole_story() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "coordinator", "demo", "--fast", "--config", str(REPO / "topology.yaml")],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"demo hung\n{out}\n{err}") from None
    assert proc.returncode == 0, f"{out}\n{err}"
    assert re.search(r"^all 3 DCs writable after \d+\.\d\d s$", out, re.M), out
    assert re.search(r"^dc1 fenced after \d+\.\d\d s \(reason not-in-quorum\)$", out, re.M), out
    assert re.search(r"^dc2/dc3 stayed writable: \d+ refusals in \d+ samples$", out, re.M), out
    rejoin = re.search(r"^dc1 writable again after \d+\.\d\d s \((.*)\); token (\d+) -> (\d+)$", out, re.M)
    assert rejoin, out
    assert int(rejoin.group(3)) > int(rejoin.group(2)), "rejoin must mint a higher token"
    failover = re.search(
        r"^fail-over after \d+\.\d\d s: dc1-(a|b) leads dc1, token (\d+) -> (\d+)$", out, re.M
    )
    assert failover, out
    assert int(failover.group(3)) > int(failover.group(2)), "a new leader must mint a higher token"
    assert "demo finished: every step happened" in out
    pids = sorted({int(p) for p in re.findall(r"\bpid (\d+)", out)})
    assert len(pids) == 5, out  # the emulator and four replicas
    assert [p for p in pids if _alive(p)] == [], "the demo left processes behind"


def test_demo_bad_config_is_one_line_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "t.yaml"
    bad.write_text("cluster: x\ndatacenters: 3\n")
    res = subprocess.run(
        [sys.executable, "-m", "coordinator", "demo", "--fast", "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 2
    assert len(res.stderr.strip().splitlines()) == 1 and res.stderr.startswith("coordinator: ")
