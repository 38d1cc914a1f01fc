"""Runner and hook tests: command execution, result delivery, cancellation, timers,
shutdown (with StubCore: these test the shell, not the core's decisions)."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

from daemon_stubs import StubCore, StubSender

from coordinator.consul.errors import ConsulTimeout, ConsulUnreachable
from coordinator.consul.sansio import Request, Response
from coordinator.core.protocol import AdminAction, CancelRequest, HookResult, RunHook, SendRequest
from coordinator.daemon.hooks import run_hook
from coordinator.daemon.runner import Runner

REQ = Request("GET", "/v1/kv/x", timeout=5.0)


async def _until(predicate: object, limit: float = 20.0) -> None:
    deadline = time.monotonic() + limit
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition never became true"
        await asyncio.sleep(0.01)


def test_send_request_delivers_response_once() -> None:
    async def body() -> None:
        core = StubCore(start_commands=[SendRequest("t1", REQ)])
        sender = StubSender(lambda req: Response(200, {}, b"[]"))
        runner = Runner(core, sender)
        runner.start()
        await _until(lambda: core.responses)
        await asyncio.sleep(0.05)
        assert core.responses == [("t1", Response(200, {}, b"[]"))]
        assert sender.sent == [REQ]
        assert runner.consul_outcomes["2xx"] == 1
        await runner.close()

    asyncio.run(body())


def test_request_timeout_is_enforced_by_the_runner() -> None:
    async def hang(req: Request) -> Response:
        await asyncio.sleep(3600)
        raise AssertionError

    async def body() -> None:
        core = StubCore(start_commands=[SendRequest("slow", Request("GET", "/v1/kv/x", timeout=0.05))])
        runner = Runner(core, StubSender(hang))
        runner.start()
        await _until(lambda: core.responses)
        tag, result = core.responses[0]
        assert tag == "slow" and isinstance(result, ConsulTimeout)
        assert runner.consul_outcomes["timeout"] == 1
        await runner.close()

    asyncio.run(body())


def test_unexpected_client_exception_becomes_consul_unavailable() -> None:
    def boom(req: Request) -> Response:
        raise RuntimeError("garbage")

    async def body() -> None:
        core = StubCore(start_commands=[SendRequest("t", REQ)])
        runner = Runner(core, StubSender(boom))
        runner.start()
        await _until(lambda: core.responses)
        assert isinstance(core.responses[0][1], ConsulUnreachable)
        await runner.close()

    asyncio.run(body())


def test_cancelled_request_is_never_delivered() -> None:
    gate = asyncio.Event()

    async def wait_gate(req: Request) -> Response:
        await gate.wait()
        return Response(200)

    async def body() -> None:
        core = StubCore(start_commands=[SendRequest("a", REQ), SendRequest("b", REQ)])
        runner = Runner(core, StubSender(wait_gate))
        runner.start()
        await asyncio.sleep(0.02)
        core.on_timer_commands = [CancelRequest("a")]
        core.deadline = 0.0
        runner._wake.set()
        await _until(lambda: core.timer_calls == 1)
        gate.set()
        await _until(lambda: core.responses)
        await asyncio.sleep(0.05)
        assert [tag for tag, _ in core.responses] == ["b"]
        await runner.close()

    asyncio.run(body())


def test_timer_fires_on_deadline_and_is_rearmed_by_calls() -> None:
    async def body() -> None:
        core = StubCore()
        runner = Runner(core, StubSender())
        runner.start()
        await asyncio.sleep(0.02)
        assert core.timer_calls == 0
        core.deadline = runner.clock() + 0.02
        runner.admin(AdminAction.CAUGHT_UP)  # any core call re-reads the deadline
        await _until(lambda: core.timer_calls == 1)
        await runner.close()

    asyncio.run(body())


def test_hook_command_result_is_delivered() -> None:
    async def body() -> None:
        hook = RunHook(
            "h",
            (sys.executable, "-c", "import os,sys; sys.exit(int(os.environ['X_CODE']))"),
            {"X_CODE": "3"},
            20,
        )
        core = StubCore(start_commands=[hook])
        runner = Runner(core, StubSender())
        runner.start()
        await _until(lambda: core.hooks)
        assert core.hooks[0][0] == "h" and core.hooks[0][1].exit_code == 3
        await runner.close()

    asyncio.run(body())


def test_shutdown_waits_for_core_finished() -> None:
    async def body() -> None:
        core = StubCore()
        runner = Runner(core, StubSender())
        runner.start()
        assert await runner.shutdown(grace=5.0) is True
        assert core.admin_log == [AdminAction.SHUTDOWN]

    asyncio.run(body())


def test_shutdown_is_bounded_when_core_never_finishes() -> None:
    async def body() -> None:
        core = StubCore(finish_on_shutdown=False)
        runner = Runner(core, StubSender())
        runner.start()
        assert await runner.shutdown(grace=0.1) is False

    asyncio.run(body())


def test_run_hook_exit_codes_env_and_output() -> None:
    code = "import os; print('dc=' + os.environ['COORDINATOR_DC']); raise SystemExit(0)"
    result = asyncio.run(run_hook((sys.executable, "-c", code), {"COORDINATOR_DC": "dc2"}, 20))
    assert result == HookResult(exit_code=0, detail="dc=dc2")
    result = asyncio.run(run_hook((sys.executable, "-c", "raise SystemExit(1)"), {}, 20))
    assert result.exit_code == 1


def test_run_hook_missing_binary_is_not_an_exception() -> None:
    result = asyncio.run(run_hook(("/nonexistent/hook",), {}, 5))
    assert result.exit_code is None and "cannot start" in result.detail


def test_run_hook_timeout_kills_the_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    script = f"sleep 300 & echo $! > {pidfile}; wait"
    result = asyncio.run(run_hook(("/bin/sh", "-c", script), {}, 0.3))
    assert result.exit_code is None and "timed out" in result.detail
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 10
    while _alive(child):
        assert time.monotonic() < deadline, "grandchild survived the timeout"
        time.sleep(0.02)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purposes
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_a_cancellation_not_asked_for_by_the_core_is_still_delivered() -> None:
    """A library that leaks CancelledError must not leave the core's request pending forever."""

    async def leaks_cancel(req: Request) -> Response:
        await asyncio.sleep(0)
        raise asyncio.CancelledError

    async def body() -> None:
        core = StubCore(start_commands=[SendRequest("leaky", REQ)])
        runner = Runner(core, StubSender(leaks_cancel))
        runner.start()
        await _until(lambda: core.responses)
        tag, result = core.responses[0]
        assert tag == "leaky" and isinstance(result, ConsulUnreachable)
        await runner.close()

    asyncio.run(body())
