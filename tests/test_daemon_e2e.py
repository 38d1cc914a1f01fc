"""End to end: three `coordinator run` processes (one per DC) against `python -m sim.consul`.

Checks the whole path shell + real ReplicaCore + Consul client + emulator: every DC becomes
writable; cutting dc1 off both ways fences dc1 (503 not-in-quorum) while dc2 and dc3 keep
answering 200; the admin API fences a DC through the real core; SIGTERM stops each daemon
with exit 0; no token reaches a log. All waits poll with generous deadlines; nothing is timed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from emu_helpers import running_emulator

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

REPO = Path(__file__).resolve().parent.parent
DCS = ("dc1", "dc2", "dc3")
DEADLINE = 60.0
CONSUL_TOKEN = "6f1d2c3b-e2e-consul-acl-token"
ADMIN_TOKEN = "e2e-admin-token-0123456789"


@dataclass
class Daemon:
    dc: str
    proc: subprocess.Popen[str]
    api: str
    stderr_path: Path

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")


def _first_line(stream: IO[str], timeout: float) -> str:
    box: list[str] = []
    reader = threading.Thread(target=lambda: box.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return box[0] if box else ""


@contextmanager
def daemon(dc: str, consul_url: str, admin_file: Path, workdir: Path) -> Iterator[Daemon]:
    stderr_path = workdir / f"{dc}.stderr"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONSUL_")}
    env["CONSUL_HTTP_TOKEN"] = CONSUL_TOKEN
    cmd = [
        sys.executable,
        "-m",
        "coordinator",
        "run",
        "--config",
        str(REPO / "topology.yaml"),
        "--consul",
        consul_url,
    ]
    cmd += ["--listen", "127.0.0.1:0", "--id", f"{dc}-a", "--admin-token-file", str(admin_file)]
    with open(stderr_path, "w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=env, cwd=REPO)
    try:
        assert proc.stdout is not None
        line = _first_line(proc.stdout, DEADLINE)
        assert line, f"{dc}: no listening line; stderr: {stderr_path.read_text()[-2000:]}"
        info = json.loads(line)
        assert info["dc"] == dc  # learned from the agent's /v1/agent/self
        yield Daemon(dc, proc, info["listening"], stderr_path)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def _may_write(d: Daemon) -> tuple[int, dict[str, Any]]:
    try:
        resp = httpx.get(d.api + "/v1/may-write", timeout=5, trust_env=False)
    except httpx.HTTPError:
        return 0, {}
    return resp.status_code, resp.json()


def _eventually(what: str, check: Callable[[], bool], daemons: list[Daemon]) -> None:
    deadline = time.monotonic() + DEADLINE
    while not check():
        if time.monotonic() > deadline:
            states = {d.dc: _may_write(d) for d in daemons}
            pytest.fail(f"never saw: {what}; answers: {states}")
        time.sleep(0.1)


def _link(control: str, src: str, dst: str, state: str) -> None:
    resp = httpx.put(
        f"{control}/_emulator/link/{src}/{dst}", params={"state": state}, timeout=10, trust_env=False
    )
    assert resp.status_code == 200, resp.text


def test_three_dcs_partition_admin_and_shutdown() -> None:
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="coord-e2e-")))
        admin_file = workdir / "admin.token"
        admin_file.write_text(ADMIN_TOKEN + "\n")
        emu = stack.enter_context(running_emulator(DCS, extra_args=["--forward-timeout", "2"]))
        daemons = [stack.enter_context(daemon(dc, emu.urls[dc], admin_file, workdir)) for dc in DCS]
        d1, d2, d3 = daemons

        _eventually("every DC allowed", lambda: all(_may_write(d)[0] == 200 for d in daemons), daemons)
        for d in daemons:
            status, body = _may_write(d)
            if status == 200:
                assert body["allowed"] is True and body["dc"] == d.dc and body["token"] > 0

        control = emu.urls["dc2"]
        for src, dst in (("dc1", "dc2"), ("dc2", "dc1"), ("dc1", "dc3"), ("dc3", "dc1")):
            _link(control, src, dst, "down")

        def dc1_fenced() -> bool:
            status, body = _may_write(d1)
            return status == 503 and body.get("reason") == "not-in-quorum"

        _eventually("dc1 503 not-in-quorum", dc1_fenced, daemons)
        _eventually(
            "dc1 fenced while dc2 and dc3 answer 200",
            lambda: dc1_fenced() and _may_write(d2)[0] == 200 and _may_write(d3)[0] == 200,
            daemons,
        )
        quorum = _may_write(d2)[1].get("quorum")
        assert quorum is None or "dc1" not in quorum

        resp = httpx.post(
            d3.api + "/v1/fence", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10
        )
        assert resp.status_code == 200 and resp.json()["allowed"] is False
        status, body = _may_write(d3)
        assert status == 503 and body["reason"] == "fenced-by-admin"

        for d in daemons:
            d.proc.send_signal(signal.SIGTERM)
        for d in daemons:
            assert d.proc.wait(30) == 0, d.stderr()[-2000:]
            log = d.stderr()
            assert "stopped" in log and "Traceback" not in log
            assert CONSUL_TOKEN not in log and ADMIN_TOKEN not in log
            assert f"transition dc={d.dc} fenced -> catching-up" in log
