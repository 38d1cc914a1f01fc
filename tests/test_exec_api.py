"""`coordinator exec --api` against a stub coordinator API (tests/procs.py StubApi).

Real processes: exec runs as a subprocess, CMD is a small Python script that appends
"<token> <pid> <dc>" to a file when it starts and handles SIGTERM as told. Every wait is a
poll with a generous deadline; nothing asserts on durations.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from procs import StubApi, stub_api

from coordinator.exec import UsageError, exec_options
from coordinator.exec_sources import SourceError, grant_from_json

DEADLINE = 20.0

CHILD = r"""
import os, signal, sys, time
out, mode = sys.argv[1], sys.argv[2]
with open(out, "a") as fh:
    fh.write(f"{os.environ['COORDINATOR_TOKEN']} {os.getpid()} {os.environ['COORDINATOR_DC']}\n")
if mode == "ignore-term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
elif mode == "exit3-on-term":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(3))
elif mode.startswith("exit"):
    sys.exit(int(mode[4:]))
while True:
    time.sleep(0.05)
"""


def wait_for(cond: Callable[[], bool], what: str, deadline: float = DEADLINE) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie awaiting its reaper counts as dead
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def runs(out: Path) -> list[tuple[int, int, str]]:
    if not out.exists():
        return []
    rows = []
    for line in out.read_text().splitlines():
        token, pid, dc = line.split()
        rows.append((int(token), int(pid), dc))
    return rows


@pytest.fixture
def api() -> Iterator[StubApi]:
    with stub_api(lease=1.5) as stub:
        yield stub


def start_exec(api: StubApi, tmp_path: Path, mode: str, *extra: str) -> tuple[subprocess.Popen[str], Path]:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    out = tmp_path / "runs.txt"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "coordinator",
            "exec",
            "--api",
            api.url,
            *extra,
            "--",
            sys.executable,
            str(script),
            str(out),
            mode,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc, out


def finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=DEADLINE)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"exec did not exit:\n{err}") from None
    return proc.returncode, err


def test_child_follows_the_answer_and_restarts_with_new_token(api: StubApi, tmp_path: Path) -> None:
    proc, out = start_exec(api, tmp_path, "run")
    try:
        time.sleep(0.3)
        assert runs(out) == [], "CMD must not run before the first yes"
        api.set_yes(5)
        wait_for(lambda: len(runs(out)) == 1, "first start")
        token, pid, dc = runs(out)[0]
        assert (token, dc) == (5, "dc1")
        api.set_no()
        wait_for(lambda: not alive(pid), "child stopped after the no")
        assert proc.poll() is None, "without --once exec keeps waiting"
        api.set_yes(6)
        wait_for(lambda: len(runs(out)) == 2, "restart")
        token2, pid2, _ = runs(out)[1]
        assert token2 == 6 and pid2 != pid
        proc.send_signal(signal.SIGTERM)
        code, err = finish(proc)
        assert code == 0, err
        assert not alive(pid2)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_token_change_while_writable_restarts(api: StubApi, tmp_path: Path) -> None:
    api.set_yes(7)
    proc, out = start_exec(api, tmp_path, "run")
    try:
        wait_for(lambda: len(runs(out)) == 1, "first start")
        api.set_yes(9)
        wait_for(lambda: len(runs(out)) == 2, "restart with the new token")
        assert [r[0] for r in runs(out)] == [7, 9]
        assert not alive(runs(out)[0][1])
    finally:
        proc.send_signal(signal.SIGTERM)
        finish(proc)


def test_unrenewed_lease_stops_child_before_it_ends(api: StubApi, tmp_path: Path) -> None:
    proc, out = start_exec(api, tmp_path, "run", "--grace", "0.5", "--once")
    try:
        wait_for(lambda: api.requests > 0, "exec polling")
        api.set_yes(11, frozen_for=1.5)
        wait_for(lambda: len(runs(out)) == 1, "start")
        pid = runs(out)[0][1]
        code, err = finish(proc)
        # the stub still says yes: only the unrenewed lease can have stopped CMD
        assert api.allowed
        assert code == 128 + signal.SIGTERM
        assert "lease not renewed" in err
        assert not alive(pid)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_sigkill_escalation_when_child_ignores_sigterm(api: StubApi, tmp_path: Path) -> None:
    api.set_yes(3)
    proc, out = start_exec(api, tmp_path, "ignore-term", "--once")
    wait_for(lambda: len(runs(out)) == 1, "start")
    pid = runs(out)[0][1]
    time.sleep(0.2)  # let the child install its SIG_IGN
    api.set_no()
    code, err = finish(proc)
    assert code == 128 + signal.SIGKILL, err
    assert not alive(pid)


def test_once_exits_with_cmd_status_after_stop(api: StubApi, tmp_path: Path) -> None:
    api.set_yes(3)
    proc, out = start_exec(api, tmp_path, "exit3-on-term", "--once")
    wait_for(lambda: len(runs(out)) == 1, "start")
    time.sleep(0.2)
    api.set_no()
    code, err = finish(proc)
    assert code == 3, err
    assert len(runs(out)) == 1


def test_cmd_exiting_on_its_own_ends_exec_with_its_status(api: StubApi, tmp_path: Path) -> None:
    api.set_yes(3)
    proc, out = start_exec(api, tmp_path, "exit7")
    code, err = finish(proc)
    assert code == 7, err
    assert len(runs(out)) == 1


def test_grace_not_below_lease_is_one_line_exit_2(api: StubApi, tmp_path: Path) -> None:
    proc, out = start_exec(api, tmp_path, "run", "--grace", "1.5")
    code, err = finish(proc)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("coordinator: --grace 1.5s must be below the lease")
    assert not out.exists()


def test_missing_command_and_unknown_command(api: StubApi, tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "coordinator", "exec", "--api", api.url],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    assert res.returncode == 2 and res.stderr.startswith("coordinator: exec needs a command")
    api.set_yes(1)
    res = subprocess.run(
        [sys.executable, "-m", "coordinator", "exec", "--api", api.url, "--", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    assert res.returncode == 127, res.stderr


def test_exec_options_validation() -> None:
    assert exec_options(["x"], None, 1.5, False).grace == pytest.approx(0.375)
    assert exec_options(["x"], 0.4, 1.5, True).kill_after == pytest.approx(0.2)
    with pytest.raises(UsageError):
        exec_options(["x"], 1.5, 1.5, False)
    with pytest.raises(UsageError):
        exec_options(["x"], 0.0, 1.5, False)


def test_grant_from_json_counts_lease_from_send_time() -> None:
    g = grant_from_json({"allowed": True, "dc": "dc1", "token": 4, "index": 2, "valid_for_ms": 1000}, 10.0)
    assert g.allowed and g.token == 4 and g.expires_at == pytest.approx(11.0)
    no = grant_from_json({"allowed": False, "dc": "dc1", "reason": "stale-view", "index": 3}, 10.0)
    assert not no.allowed and no.reason == "stale-view" and no.token is None
    with pytest.raises(SourceError):
        grant_from_json({"allowed": True, "index": 1}, 0.0)
    with pytest.raises(SourceError):
        grant_from_json({"allowed": "yes", "index": 1}, 0.0)
