"""Child-process supervision for `coordinator exec`: start CMD, stop it for sure, in time.

Contract of `Child`:

* CMD runs in its OWN process group (``start_new_session``), so a stop reaches everything
  it spawned, and a Ctrl-C on exec's terminal does not hit it behind exec's back;
* `Child.stop(kill_after)` sends SIGTERM to the group, waits at most `kill_after` seconds
  for the leader to exit, then sends SIGKILL to the group and reaps the leader. After the
  leader is reaped the group gets a final SIGKILL too, so no straggler that ignored SIGTERM
  outlives the stop (a process that left the group with setsid() is out of reach, as with
  `consul lock`);
* exit statuses follow the shell: a normal exit gives its code, death by signal N gives
  ``128 + N`` (`exit_status`), a CMD that cannot be started gives 127 (not found) or 126.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import signal
from collections.abc import Mapping, Sequence

NOT_FOUND = 127
NOT_EXECUTABLE = 126


def exit_status(returncode: int) -> int:
    """Map a Popen-style returncode (negative = killed by that signal) to a shell status."""
    return 128 - returncode if returncode < 0 else returncode


class SpawnError(Exception):
    """CMD could not be started; `status` is the shell-style exit status (126/127)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class Child:
    """One run of CMD. Create with `Child.spawn`; at most one stop is in effect."""

    def __init__(self, proc: asyncio.subprocess.Process, token: int | None) -> None:
        self.proc = proc
        self.token = token
        """The fencing token CMD was started with."""
        self.pid = proc.pid
        self._wait_task: asyncio.Task[int] = asyncio.ensure_future(proc.wait())

    @classmethod
    async def spawn(cls, argv: Sequence[str], env: Mapping[str, str], token: int | None) -> Child:
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, env=dict(env), start_new_session=True, stdin=asyncio.subprocess.DEVNULL
            )
        except FileNotFoundError as exc:
            raise SpawnError(f"cannot run {argv[0]!r}: {exc.strerror}", NOT_FOUND) from None
        except PermissionError as exc:
            raise SpawnError(f"cannot run {argv[0]!r}: {exc.strerror}", NOT_EXECUTABLE) from None
        except OSError as exc:
            raise SpawnError(f"cannot run {argv[0]!r}: {exc.strerror or exc}", NOT_EXECUTABLE) from None
        return cls(proc, token)

    @property
    def exited(self) -> asyncio.Task[int]:
        """Completes with the raw returncode when the group leader has been reaped."""
        return self._wait_task

    @property
    def running(self) -> bool:
        return not self._wait_task.done()

    def status(self) -> int:
        """Shell-style exit status; only once `exited` is done."""
        return exit_status(self._wait_task.result())

    def _signal_group(self, sig: signal.Signals) -> None:
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError:  # the group is gone and its id was reused by someone else's
            pass
        except OSError as exc:  # pragma: no cover - killpg fails only as above on Linux
            if exc.errno != errno.ESRCH:
                raise

    async def stop(self, kill_after: float) -> int:
        """SIGTERM the group, SIGKILL it after `kill_after` s; return the shell status.

        Safe to call when CMD already exited (it then only sweeps the group).
        """
        if self.running:
            self._signal_group(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._wait_task), max(kill_after, 0.0))
        self._signal_group(signal.SIGKILL)
        await self._wait_task
        return self.status()
