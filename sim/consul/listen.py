"""HTTP listeners of the emulator: one granian server (Rust/hyper HTTP/1.1, RSGI) per DC.

Why granian and not aiohttp (which the emulator used before): a blocking query's wake-up
costs one HTTP response per parked watcher, and aiohttp's per-response path (handler
resumption, `Response.prepare`, header serialisation) cost ~20 us of Python per reply on
this project's 2-vCPU VM. hyper serialises and writes the reply in Rust, so 1,000 woken
watchers drain in about half the time (docs/performance.md). granian's in-loop
("embedded") server runs the handlers on our own asyncio loop, next to the model.

Contract:
- `Listener.start()` returns once the port accepts connections, or raises `OSError` with
  one line (address in use, bad address). `--http-port 0` gets a free port: it is found
  by binding with SO_REUSEPORT (granian binds that way too) and held until granian
  listens, so no other process can take it meanwhile. An explicit port is first probed
  WITHOUT SO_REUSEPORT, so a port another emulator already serves is refused instead of
  silently shared between the two processes (Linux load-balances SO_REUSEPORT listeners).
- `Listener.stop()` cancels the handlers still running (parked blocking queries, hanging
  forwards) so that granian's graceful drain ends at once, then waits for the server.
- Handlers see `Request` (path percent-decoded, query in order with bare flags as "",
  header names lower-cased) and answer with a `Reply`; nothing of granian leaks out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable
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
    except OSError:
        sock.close()
        raise
    sock.close()
    return port, None


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


class Listener:
    """One DC's HTTP server on the running loop."""

    def __init__(self, bind: str, port: int, handler: Handler) -> None:
        self.bind = "127.0.0.1" if bind == "localhost" else bind
        """The IP literal served (granian binds literals only; `localhost` is 127.0.0.1)."""
        self.port = port
        self._handler = handler
        self._inflight: set[asyncio.Task[Any]] = set()
        self._server: Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def _app(self, scope: _Scope, proto: _Proto) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._inflight.add(task)
        try:
            length = _declared_length(scope.headers)
            if length is not None and length > MAX_BODY:
                reply = text_reply(413, f"Request body too large, max size: {MAX_BODY} bytes")
            else:
                body = await proto() if length else b""
                reply = await self._handler(_request(scope, body))
            proto.response_bytes(reply.status, list(reply.headers.items()), reply.body)
        finally:
            self._inflight.discard(task)

    async def start(self, probe: Callable[[], Awaitable[bool]]) -> None:
        """Serves, and returns once `probe()` (one request to this listener) succeeds."""
        self.port, held = _reserve(self.bind, self.port)
        try:
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
        finally:
            if held is not None:
                held.close()

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._server.stop()  # type: ignore[no-untyped-call]
        for task in list(self._inflight):
            task.cancel()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.wait_for(self._task, START_TIMEOUT)
