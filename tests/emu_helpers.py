"""Start and stop the Consul emulator (`python -m sim.consul`) as a subprocess.

Shared by the independent-client test suite and the emulator benchmark. Written against
the emulator's fixed command-line contract only (never imports `sim`):

    python -m sim.consul --datacenters dc1,dc2 [--bind 127.0.0.1] [--http-port N] ...

prints exactly one JSON line `{"datacenters": {"dc1": "http://127.0.0.1:N", ...}}` on
stdout once every DC answers, and exits 0 on SIGTERM. DC number k (0-based, in the
order given) listens on `http-port + k`; `--http-port 0` lets the emulator pick free ports.

Invariant kept by `EmulatorProcess`: while it is running, its stdout pipe is drained by a
background thread (so a chatty emulator can never block on a full pipe), and its stderr
goes to a temporary file whose tail is attached to every startup/shutdown error.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT_S = 20.0
SHUTDOWN_TIMEOUT_S = 10.0


class EmulatorError(RuntimeError):
    """The emulator did not start, printed a malformed line, or did not exit cleanly."""


def http_reply_length(buf: bytes) -> int | None:
    """Length of the first complete HTTP/1.1 response in `buf` (framed by Content-Length,
    none meaning an empty body), or None while its head or body is still incomplete. For
    raw-socket tests and benchmarks that must not pay for an HTTP client."""
    head_end = buf.find(b"\r\n\r\n")
    if head_end < 0:
        return None
    head = buf[:head_end].lower()
    at = head.find(b"\r\ncontent-length:")
    length = 0
    if at >= 0:
        eol = head.find(b"\r\n", at + 2)
        length = int(head[at + 17:eol if eol >= 0 else len(head)])
    total = head_end + 4 + length
    return total if len(buf) >= total else None


def free_port_base(count: int, host: str = "127.0.0.1", attempts: int = 50) -> int:
    """Return a port P such that P..P+count-1 were all bindable on `host` just now.

    Probes by binding; a tiny race with other processes remains (unavoidable without
    `--http-port 0`), which callers accept for a test fixture.
    """
    for _ in range(attempts):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((host, 0))
            base = int(probe.getsockname()[1])
        if base + count > 65535:
            continue
        held: list[socket.socket] = []
        try:
            for offset in range(count):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                held.append(s)
                s.bind((host, base + offset))
            return base
        except OSError:
            continue
        finally:
            for s in held:
                s.close()
    raise EmulatorError(f"no run of {count} free ports found after {attempts} attempts")


@dataclass
class EmulatorProcess:
    """A running emulator: its process handle and the URL of each datacenter."""

    proc: subprocess.Popen[bytes]
    urls: dict[str, str]
    stderr_path: Path
    _drain: threading.Thread | None = field(default=None, repr=False)

    def host_port(self, dc: str) -> tuple[str, int]:
        """(host, port) of `dc`'s HTTP API, as printed by the emulator."""
        parts = urlsplit(self.urls[dc])
        if parts.hostname is None or parts.port is None:
            raise EmulatorError(f"bad URL for {dc}: {self.urls[dc]!r}")
        return parts.hostname, parts.port

    def stderr_tail(self, limit: int = 4000) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")[-limit:]
        except OSError:
            return ""

    def stop(self) -> int:
        """SIGTERM the emulator, wait for it, and return its exit code (killing on timeout)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=SHUTDOWN_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=SHUTDOWN_TIMEOUT_S)
                raise EmulatorError(
                    f"emulator ignored SIGTERM for {SHUTDOWN_TIMEOUT_S}s; killed.\n{self.stderr_tail()}"
                ) from None
        if self._drain is not None:
            self._drain.join(timeout=SHUTDOWN_TIMEOUT_S)
        return int(self.proc.returncode)


def _read_first_line(stream: IO[bytes], lines: queue.Queue[bytes | None]) -> None:
    """Reader thread body: the first line goes to `lines`, everything after is discarded."""
    first = True
    for raw in iter(stream.readline, b""):
        if first:
            lines.put(raw)
            first = False
    if first:
        lines.put(None)


def start_emulator(
    datacenters: Sequence[str],
    *,
    http_port: int = 0,
    extra_args: Sequence[str] = (),
    startup_timeout: float = STARTUP_TIMEOUT_S,
) -> EmulatorProcess:
    """Start `python -m sim.consul` and wait for its JSON line.

    Raises EmulatorError (after killing the child) when the line does not arrive within
    `startup_timeout` seconds, is not the contracted JSON, or lacks a requested DC.
    The child inherits no CONSUL_* variables, so nothing leaks in from the caller.
    """
    stderr_file = tempfile.NamedTemporaryFile(prefix="emulator-", suffix=".stderr", delete=False)  # noqa: SIM115
    stderr_path = Path(stderr_file.name)
    cmd = [
        sys.executable,
        "-m",
        "sim.consul",
        "--datacenters",
        ",".join(datacenters),
        "--bind",
        "127.0.0.1",
        "--http-port",
        str(http_port),
        *extra_args,
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONSUL_")}
    proc = subprocess.Popen(
        cmd, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr_file, env=env
    )
    stderr_file.close()
    assert proc.stdout is not None
    lines: queue.Queue[bytes | None] = queue.Queue()
    drain = threading.Thread(target=_read_first_line, args=(proc.stdout, lines), daemon=True)
    drain.start()
    emu = EmulatorProcess(proc=proc, urls={}, stderr_path=stderr_path, _drain=drain)

    def fail(reason: str) -> EmulatorError:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=SHUTDOWN_TIMEOUT_S)
        return EmulatorError(f"{reason} (cmd: {' '.join(cmd)})\n--- stderr ---\n{emu.stderr_tail()}")

    try:
        line = lines.get(timeout=startup_timeout)
    except queue.Empty:
        raise fail(f"no JSON line within {startup_timeout}s") from None
    if line is None:
        raise fail(f"emulator exited with code {proc.poll()} before printing its JSON line")
    try:
        doc = json.loads(line)
        urls = {str(k): str(v) for k, v in doc["datacenters"].items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise fail(f"malformed startup line {line!r}: {exc}") from None
    missing = [dc for dc in datacenters if dc not in urls]
    if missing:
        raise fail(f"startup line {line!r} lacks datacenters {missing}")
    emu.urls = urls
    return emu


@contextlib.contextmanager
def running_emulator(
    datacenters: Sequence[str], *, http_port: int = 0, extra_args: Sequence[str] = ()
) -> Iterator[EmulatorProcess]:
    """Context manager form of `start_emulator`; on exit stops it and requires exit code 0."""
    emu = start_emulator(datacenters, http_port=http_port, extra_args=extra_args)
    try:
        yield emu
    except BaseException:
        emu.stop()
        raise
    code = emu.stop()
    if code != 0:
        raise EmulatorError(f"emulator exited with {code} after SIGTERM\n{emu.stderr_tail()}")
    with contextlib.suppress(OSError):
        emu.stderr_path.unlink()
