"""HTTP listeners of the emulator: one granian server (Rust/hyper HTTP/1.1, RSGI) per DC.

Why granian and not aiohttp (which the emulator used before): a blocking query's wake-up
costs one HTTP response per parked watcher, and aiohttp's per-response path (handler
resumption, `Response.prepare`, header serialisation) runs in Python. hyper serialises and
writes the reply in Rust: per woken watcher the emulator's CPU fell from 27-29.5 us to
19-22.5 us and the 1,000-watcher wake-up p99 from 53-56 ms to 20-29 ms
(benchmarks/bench_emulator.py, docs/performance.md). granian's in-loop
("embedded") server runs the handlers on our own asyncio loop, next to the model.

Contract:
- `Listener.start()` returns once the port accepts connections, or raises `OSError` with
  one line (address in use, bad address). `--http-port 0` gets a free port: it is found
  by binding with SO_REUSEPORT (granian binds that way too) and held until granian
  listens, so no other process can take it meanwhile. An explicit port is first probed
  WITHOUT SO_REUSEPORT, so a port another emulator already serves is refused instead of
  silently shared between the two processes (Linux load-balances SO_REUSEPORT listeners).
  On Linux the listener also holds an abstract Unix socket named after (address, port)
  for its whole life: binding it is atomic and per network namespace, so two emulators
  started at the same instant on one port cannot both pass the probe.
- `Listener.stop(grace)` stops accepting and waits up to `grace` seconds for the requests
  in flight; it does NOT cancel them (granian would answer each cancelled handler with a
  500, which no stopping Consul agent sends). It returns whether everything drained; if
  not, the owner ends the process and the kernel closes the connections, as when a
  Consul agent stops (`python -m sim.consul` does that after 1 s).
- A handler that raises (an emulator bug) gets a 500 naming the bug, and its traceback
  goes to stderr: an emulator bug must never pass for an answer.
- Handlers see `Request` (path percent-decoded, query in order with bare flags as "",
  header names lower-cased) and answer with a `Reply`; nothing of granian leaks out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol
from urllib.parse import parse_qsl

from granian.constants import HTTPModes, Interfaces
from granian.http import HTTP1Settings
from granian.server.embed import Server

from sim.consul.http_types import Reply, Request, text_reply

Handler = Callable[[Request], Awaitable[Reply]]

MAX_BODY = 8 * 1024 * 1024
"""Bodies above this are refused unread (413); Consul's own 512 KiB limits apply below it."""
BACKLOG = 4096
BACKPRESSURE = 1 << 20
"""granian otherwise limits concurrent requests to `backlog`; parked blocking queries count."""
START_TIMEOUT = 10.0
IDLE_CLOSE_MS = 3_600_000
"""hyper's header-read timeout also closes an idle keep-alive connection (30 s by default;
aiohttp closed them after 75 s). A client that reuses a pooled connection just as the
server closes it sees an error, so the emulator keeps idle connections for an hour."""

logging.getLogger("_granian").setLevel(logging.ERROR)  # "Embedded server is experimental!"


class _Scope(Protocol):
    method: str
    path: str
    query_string: str

    @property
    def headers(self) -> Any: ...


class _Proto(Protocol):
    async def __call__(self) -> bytes: ...

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    def response_bytes(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None: ...


def _reserve(bind: str, port: int) -> tuple[int, socket.socket | None]:
    """(port to serve, socket to hold until granian listens); raises OSError if taken."""
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if port == 0:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((bind, 0))
            return sock.getsockname()[1], sock
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((bind, port))
    except OSError as err:
        sock.close()
        raise OSError(f"{bind}:{port}: {(err.strerror or str(err)).lower()}") from None
    sock.close()
    return port, None


def _claim(bind: str, port: int) -> socket.socket | None:
    """Linux: hold the abstract Unix socket `sim.consul <bind> <port>` (OSError if another
    emulator holds it). None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(f"\0sim.consul {bind} {port}")
    except OSError:
        sock.close()
        raise OSError(f"{bind}:{port}: address already in use (by another emulator)") from None
    return sock


def _request(scope: _Scope, body: bytes) -> Request:
    query = tuple(parse_qsl(scope.query_string, keep_blank_values=True))
    return Request(scope.method, scope.path, query, dict(scope.headers.items()), body)


def _declared_length(headers: Any) -> int | None:
    """Content-Length as declared; -1 for a chunked body; None when there is no body."""
    length = headers.get("content-length")
    if length is not None:
        try:
            return int(length)
        except ValueError:
            return None
    return -1 if headers.get("transfer-encoding") else None


async def _read_body(proto: _Proto, length: int | None) -> bytes | None:
    """The whole body; None when it exceeds MAX_BODY (a chunked body is read up to it)."""
    if not length:
        return b""
    if length > MAX_BODY:
        return None
    if length > 0:
        return await proto()
    chunks: list[bytes] = []
    size = 0
    async for chunk in proto:
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


class Listener:
    """One DC's HTTP server on the running loop."""

    def __init__(self, bind: str, port: int, handler: Handler) -> None:
        self.bind = "127.0.0.1" if bind == "localhost" else bind
        """The IP literal served (granian binds literals only; `localhost` is 127.0.0.1)."""
        self.port = port
        self._handler = handler
        self._claim: socket.socket | None = None
        self._server: Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def _app(self, scope: _Scope, proto: _Proto) -> None:
        body = await _read_body(proto, _declared_length(scope.headers))
        if body is None:
            reply = text_reply(413, f"Request body too large, max size: {MAX_BODY} bytes")
        else:
            try:
                reply = await self._handler(_request(scope, body))
            except Exception as err:
                sys.stderr.write(f"sim.consul: {scope.method} {scope.path} failed:\n")
                traceback.print_exc()
                reply = text_reply(500, f"emulator bug: {type(err).__name__}: {err}")
        proto.response_bytes(reply.status, list(reply.headers.items()), reply.body)

    async def start(self, probe: Callable[[], Awaitable[bool]]) -> None:
        """Serves, and returns once `probe()` (one request to this listener) succeeds."""
        self.port, held = _reserve(self.bind, self.port)
        try:
            self._claim = _claim(self.bind, self.port)
            self._server = Server(self._app, address=self.bind, port=self.port,
                                  interface=Interfaces.RSGI, http=HTTPModes.http1,
                                  websockets=False, backlog=BACKLOG, backpressure=BACKPRESSURE,
                                  http1_settings=HTTP1Settings(header_read_timeout=IDLE_CLOSE_MS),
                                  log_enabled=False)
            self._task = asyncio.create_task(self._server.serve())
            loop = asyncio.get_running_loop()
            deadline = loop.time() + START_TIMEOUT
            while True:
                if self._task.done():
                    err = self._task.exception()
                    first = str(err).strip().splitlines()[0] if err else "server exited"
                    raise OSError(f"cannot serve on {self.bind}:{self.port}: {first}")
                with contextlib.suppress(OSError):
                    if await probe():
                        return
                if loop.time() > deadline:
                    raise OSError(f"cannot serve on {self.bind}:{self.port}: not answering")
                await asyncio.sleep(0.01)
        except BaseException:
            if self._claim is not None:
                self._claim.close()
            raise
        finally:
            if held is not None:
                held.close()

    async def stop(self, grace: float) -> bool:
        """Stops accepting; True once every request in flight is answered (within `grace`)."""
        if self._server is None or self._task is None:
            return True
        self._server.stop()  # type: ignore[no-untyped-call]
        done, _ = await asyncio.wait({self._task}, timeout=grace)
        if done and self._claim is not None:
            self._claim.close()
        return bool(done)
