"""Real processes of the lab: start with a ready line, signal, kill, restart.

A `Proc` runs one argv (usually ``ip netns exec cqlab-dcN ...``) in its own session with
stdout and stderr sent to files under the run directory. `start` waits (bounded) for the
first stdout line, which every lab process prints as JSON once it serves. `ip netns exec`
execs the command, so the Popen pid is the server's own pid and signals reach it
directly.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

READY_TIMEOUT = 20.0
STOP_GRACE = 15.0
"""How long a stop waits after SIGTERM before SIGKILL. Longer than a replica's own
graceful stop (it waits for its last "yes" to run out, then releases: 7-8 s at the
default timers, bounded by the daemon's `shutdown_grace`), so teardown never cuts a
graceful release short."""


class ProcError(RuntimeError):
    """A process did not start (exited or printed no ready line in time)."""


class Proc:
    def __init__(self, name: str, argv: Sequence[str], logdir: Path) -> None:
        self.name = name
        self.argv = list(argv)
        self.logdir = logdir
        self.popen: subprocess.Popen[bytes] | None = None
        self.ready: dict[str, Any] = {}
        self.starts = 0
        self.stopped = False
        """True while SIGSTOPped."""

    @property
    def pid(self) -> int | None:
        return None if self.popen is None else self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def start(self, timeout: float = READY_TIMEOUT) -> dict[str, Any]:
        """Start and return the parsed ready line; raises ProcError (and kills) on failure."""
        self.starts += 1
        out_path = self.logdir / f"{self.name}.{self.starts}.out"
        err_path = self.logdir / f"{self.name}.{self.starts}.err"
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            self.popen = subprocess.Popen(
                self.argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, start_new_session=True
            )
        self.stopped = False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = out_path.read_text(encoding="utf-8", errors="replace")
            if "\n" in text:
                try:
                    self.ready = json.loads(text.splitlines()[0])
                except ValueError:
                    self.kill()
                    raise ProcError(f"{self.name}: first stdout line is not JSON: {text[:200]!r}") from None
                return self.ready
            if not self.alive():
                break
            time.sleep(0.05)
        self.kill()
        tail = err_path.read_text(encoding="utf-8", errors="replace")[-800:]
        raise ProcError(f"{self.name}: no ready line within {timeout:g}s; stderr: {tail}")

    def signal(self, sig: signal.Signals) -> None:
        if self.popen is not None and self.popen.poll() is None:
            os.kill(self.popen.pid, sig)
        if sig == signal.SIGSTOP:
            self.stopped = True
        elif sig == signal.SIGCONT:
            self.stopped = False

    def kill(self) -> None:
        """SIGKILL and reap (bounded)."""
        if self.popen is None:
            return
        if self.popen.poll() is None:
            os.kill(self.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=5)
        self.stopped = False

    def stop(self, grace: float = STOP_GRACE) -> None:
        """SIGCONT + SIGTERM, wait up to `grace`, then SIGKILL."""
        if self.popen is None or self.popen.poll() is not None:
            return
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.kill()


def stop_all(procs: Sequence[Proc], grace: float = STOP_GRACE) -> None:
    """SIGCONT + SIGTERM to every process at once, wait for all (one shared `grace`
    deadline), then SIGKILL whatever is left."""
    for proc in procs:
        with contextlib.suppress(OSError):
            proc.signal(signal.SIGCONT)
            proc.signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in procs:
        if proc.popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
        proc.kill()
