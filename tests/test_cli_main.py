"""CLI tests: exit codes and one-line errors of `coordinator may-write|status|check-config|run`."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from coordinator.cli import main
from coordinator.status_view import render_status

REPO = Path(__file__).resolve().parent.parent
TOPOLOGY = REPO / "topology.yaml"


@contextmanager
def serve_in_thread(routes: dict[str, tuple[int, bytes]]) -> Iterator[str]:
    """A tiny aiohttp server answering GET path -> (status, body); yields its base URL."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    state: dict[str, Any] = {}

    async def handler(request: web.Request) -> web.Response:
        status, body = routes.get(request.path, (404, b"{}"))
        return web.Response(status=status, body=body, content_type="application/json")

    async def start() -> None:
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        state["runner"] = runner
        state["port"] = runner.addresses[0][1]

    def thread_main() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=thread_main, daemon=True)
    thread.start()
    assert ready.wait(20)
    try:
        yield f"http://127.0.0.1:{state['port']}"
    finally:
        asyncio.run_coroutine_threadsafe(state["runner"].cleanup(), loop).result(20)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(20)
        loop.close()


YES = json.dumps(
    {
        "allowed": True,
        "dc": "dc1",
        "leader": "r",
        "token": 3,
        "quorum": ["dc1"],
        "index": 2,
        "valid_for_ms": 900,
    }
)
NO = json.dumps({"allowed": False, "dc": "dc1", "reason": "not-in-quorum", "leader": None, "index": 3})


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        (200, YES, 0),
        (503, NO, 1),
        (200, "<html>garbage</html>", 2),
        (200, '{"allowed": "yes"}', 2),
        (503, YES, 2),  # allowed but not 200: inconsistent, never read as yes
        (500, "{}", 2),
    ],
)
def test_may_write_exit_codes(status: int, body: str, code: int, capsys: pytest.CaptureFixture[str]) -> None:
    with serve_in_thread({"/v1/may-write": (status, body.encode())}) as url:
        assert main(["may-write", "--api", url]) == code
    out, err = capsys.readouterr()
    if code == 2:
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    else:
        assert out.startswith("yes" if code == 0 else "no")


def test_may_write_quiet_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    with serve_in_thread({"/v1/may-write": (503, NO.encode())}) as url:
        assert main(["may-write", "--api", url, "--quiet"]) == 1
    assert capsys.readouterr().out == ""


def test_may_write_unreachable_is_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with serve_in_thread({}) as url:
        pass  # the server is gone now: its port refuses connections
    monkeypatch.setenv("COORDINATOR_API", url)
    assert main(["may-write"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "cannot reach" in err


STATUS = {
    "replica_id": "r1",
    "cluster": "demo",
    "dc": "dc1",
    "role": "leader",
    "dc_state": "writable",
    "reason": None,
    "token": 17,
    "lease_remaining": 1.2,
    "quorum": {"in_quorum": True, "members": ["dc1", "dc2"]},
    "directed": {"dc1": {"dc2": True, "dc3": False}, "dc2": {"dc1": True}},
    "transitions": [
        {"at": 5.0, "from_state": "fenced", "to_state": "catching-up", "reason": "quorum-confirmed"}
    ],
}


def test_status_table_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    with serve_in_thread({"/v1/status": (200, json.dumps(STATUS).encode())}) as url:
        assert main(["status", "--api", url]) == 0
        table = capsys.readouterr().out
        assert main(["status", "--api", url, "--json"]) == 0
        assert json.loads(capsys.readouterr().out) == STATUS
    assert "writable" in table and "token 17" in table and "dc1 dc2" in table
    assert "fenced -> catching-up" in table


def test_render_status_matrix_marks_links() -> None:
    text = render_status(STATUS)
    rows = {line.split()[0]: line.split()[1:] for line in text.splitlines() if line.startswith("  dc")}
    assert rows["dc1"] == ["-", "+", "."]
    assert rows["dc2"] == ["+", "-", "?"]
    assert rows["dc3"] == ["?", "?", "-"]


def test_render_status_tolerates_missing_fields() -> None:
    assert "dc -" in render_status({})


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "coordinator", *args], capture_output=True, text=True, timeout=60, cwd=REPO
    )


def test_check_config_bad_file_exits_2_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("cluster: demo\ndatacenters:\n  dc1: {weight: -1}\n")
    proc = _cli("check-config", str(bad))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines()[0].startswith(f"{bad}:")


def test_check_config_good_file_exits_0() -> None:
    proc = _cli("check-config", str(TOPOLOGY))
    assert proc.returncode == 0, proc.stderr


def test_run_with_unknown_dc_exits_2_with_one_line() -> None:
    proc = _cli("run", "--config", str(TOPOLOGY), "--dc", "dc9", "--listen", "127.0.0.1:0")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "dc9" in lines[0] and "not in the topology" in lines[0]
    assert proc.stdout == ""


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--listen", "nonsense"], "--listen"),
        (["--admin-token-file", "/nonexistent/token"], "--admin-token-file"),
        (["--log-level", "loud"], "--log-level"),
    ],
)
def test_run_bad_options_exit_2_with_one_line(args: list[str], needle: str) -> None:
    proc = _cli("run", "--config", str(TOPOLOGY), "--dc", "dc1", *args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], proc.stderr


def test_run_with_bad_config_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "t.yaml"
    bad.write_text("cluster: [\n")
    proc = _cli("run", "--config", str(bad), "--dc", "dc1")
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and str(bad) in proc.stderr


def test_run_cannot_learn_dc_from_dead_agent_exits_1() -> None:
    with serve_in_thread({}) as url:
        pass
    proc = _cli("run", "--config", str(TOPOLOGY), "--consul", url, "--listen", "127.0.0.1:0")
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--dc" in lines[0], proc.stderr


def test_consul_token_never_printed_on_startup_failure() -> None:
    secret = "b1e3c1d0-consul-acl-token-0000"
    proc = subprocess.run(
        [sys.executable, "-m", "coordinator", "run", "--config", str(TOPOLOGY), "--consul", "127.0.0.1:1"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={"CONSUL_HTTP_TOKEN": secret, "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode != 0
    assert secret not in proc.stderr and secret not in proc.stdout
