"""Running the core's `RunHook` commands as subprocesses.

Contract of `run_hook`:

* the hook runs with ``os.environ`` plus the command's extra env, in a NEW process group
  (``start_new_session``) so that a timeout can kill everything it spawned;
* it returns ``HookResult(exit_code, detail)`` where ``detail`` is the tail of the hook's
  combined stdout/stderr (at most `DETAIL_MAX` characters);
* on timeout the whole group gets SIGTERM, then SIGKILL after `KILL_GRACE` seconds, and the
  result has ``exit_code=None``; a hook that cannot be started also gives ``exit_code=None``;
* cancelling the awaiting task kills the group the same way (and re-raises CancelledError).

It never raises for a failing hook: every outcome is a HookResult.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping

from coordinator.core.protocol import HookResult

DETAIL_MAX = 1000
KILL_GRACE = 1.0
_READ_CHUNK = 4096


async def _drain(stream: asyncio.StreamReader | None, keep: bytearray) -> None:
    """Read `stream` to EOF, keeping only its last DETAIL_MAX bytes in `keep`."""
    if stream is None:
        return
    while True:
        chunk = await stream.read(_READ_CHUNK)
        if not chunk:
            return
        keep.extend(chunk)
        if len(keep) > DETAIL_MAX:
            del keep[: len(keep) - DETAIL_MAX]


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


async def _kill_group(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM the hook's process group, then SIGKILL it if the leader is still alive."""
    _signal_group(proc.pid, signal.SIGTERM)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(proc.wait(), KILL_GRACE)
    _signal_group(proc.pid, signal.SIGKILL)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(proc.wait(), KILL_GRACE)


def _tail(keep: bytearray) -> str:
    return keep.decode("utf-8", errors="replace").strip()[-DETAIL_MAX:]


async def run_hook(argv: tuple[str, ...], env: Mapping[str, str], timeout: float) -> HookResult:
    """Run `argv` with `env` added to the environment; see the module contract."""
    if not argv:
        return HookResult(exit_code=None, detail="empty hook command")
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            env={**os.environ, **env},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        return HookResult(exit_code=None, detail=f"cannot start hook: {exc.strerror or exc}")
    keep = bytearray()
    reader = asyncio.ensure_future(_drain(proc.stdout, keep))
    try:
        code = await asyncio.wait_for(proc.wait(), max(timeout, 0.0))
    except TimeoutError:
        await _kill_group(proc)
        reader.cancel()
        return HookResult(exit_code=None, detail=f"hook timed out after {timeout:g}s; {_tail(keep)}".strip())
    except asyncio.CancelledError:
        await _kill_group(proc)
        reader.cancel()
        raise
    # Children that outlive the hook may hold the pipe open: don't wait for them for long.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(reader), KILL_GRACE)
    reader.cancel()
    return HookResult(exit_code=code, detail=_tail(keep))
