"""AsyncConsul: wire fidelity, token header, transport error mapping, timeouts.

Mostly httpx.MockTransport; a few tests use a raw asyncio server on 127.0.0.1 (port 0) or
a unix socket to exercise the real transport.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import httpx
import pytest

from coordinator.consul import errors as e
from coordinator.consul import sansio as s
from coordinator.consul.client import AsyncConsul, render_query
from coordinator.consul.config import ConsulConfig

TOKEN = "t0k3n-aaaa-bbbb-cccc-dddddddddddd"
Handler = (
    Callable[[httpx.Request], httpx.Response]
    | Callable[[httpx.Request], Coroutine[None, None, httpx.Response]]
)


def run(coro: Awaitable[Any]) -> Any:
    async def main() -> Any:
        return await coro

    return asyncio.run(main())


def client(handler: Handler, *, token: str | None = TOKEN, default_timeout: float = 10.0) -> AsyncConsul:
    return AsyncConsul(
        ConsulConfig(token=token),
        transport=httpx.MockTransport(handler),
        default_timeout=default_timeout,
    )


def test_render_query() -> None:
    query = render_query((("dc", "dc 1"), ("recurse", ""), ("acquire", "a&b")))
    assert query == "dc=dc%201&recurse&acquire=a%26b"


def test_send_wire_fidelity_and_token_header() -> None:
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(200, content=b"true", headers={"X-Consul-Index": "4", "X-Weird": "A"})

    async def go() -> s.Response:
        async with client(handler) as c:
            return await c.send(s.kv_put("a b/ü", b"\x00v", acquire="sid", dc="dc2"))

    resp = run(go())
    (req,) = seen
    assert req.method == "PUT"
    assert req.url.raw_path == b"/v1/kv/a%20b/%C3%BC?dc=dc2&acquire=sid"
    assert req.content == b"\x00v"
    assert req.headers["x-consul-token"] == TOKEN
    assert resp == s.Response(200, {"x-consul-index": "4", "x-weird": "A", "content-length": "4"}, b"true")


def test_no_token_no_header_and_flag_params() -> None:
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(404, headers={"X-Consul-Index": "9"})

    async def go() -> s.KvRead:
        async with client(handler, token=None) as c:
            return await c.kv_get("p/", recurse=True, consistency="consistent")

    read = run(go())
    assert read.entries == ()
    assert read.meta.index == 9
    assert "x-consul-token" not in seen[0].headers
    assert seen[0].url.raw_path == b"/v1/kv/p/?consistent&recurse"


def test_convenience_methods_parse() -> None:
    routes: dict[str, httpx.Response] = {
        "/v1/session/create": httpx.Response(200, json={"ID": "sid-1"}),
        "/v1/session/renew/gone": httpx.Response(404, text="Session id 'gone' not found"),
        "/v1/status/leader": httpx.Response(200, json="10.0.0.1:8300"),
        "/v1/catalog/datacenters": httpx.Response(200, json=["dc1", "dc2", "dc3"]),
        "/v1/agent/self": httpx.Response(200, json={"Config": {"Datacenter": "dc2", "NodeName": "n2"}}),
        "/v1/agent/check/pass/alive": httpx.Response(200),
        "/v1/txn": httpx.Response(409, json={"Results": None, "Errors": [{"OpIndex": 0, "What": "nope"}]}),
    }

    hit: list[str] = []

    def handler(req: httpx.Request) -> httpx.Response:
        hit.append(req.url.path)
        return routes[req.url.path]

    async def go() -> None:
        async with client(handler) as c:
            assert await c.session_create(name="x", ttl=10, checks=[]) == "sid-1"
            with pytest.raises(e.SessionNotFound):
                await c.session_renew("gone")
            assert await c.status_leader(dc="dc3") == "10.0.0.1:8300"
            assert await c.catalog_datacenters() == ["dc1", "dc2", "dc3"]
            assert await c.agent_self() == s.AgentSelf("dc2", "n2", False)
            await c.agent_check_pass("alive")
            assert hit[-1] == "/v1/agent/check/pass/alive"
            with pytest.raises(e.TxnRolledBack) as info:
                await c.txn([s.TxnOp.check_session("k", "sid")])
            assert info.value.errors == ((0, "nope"),)

    run(go())


@pytest.mark.parametrize(
    ("exc", "cls"),
    [
        (httpx.ConnectError("connection refused"), e.ConsulUnreachable),
        (httpx.ReadError("connection reset by peer"), e.ConsulUnreachable),
        (httpx.RemoteProtocolError("server disconnected"), e.ConsulUnreachable),
        (httpx.ConnectTimeout("connect timed out"), e.ConsulTimeout),
        (httpx.ReadTimeout("read timed out"), e.ConsulTimeout),
        (httpx.PoolTimeout("pool"), e.ConsulTimeout),
    ],
)
def test_transport_errors_are_mapped(exc: httpx.TransportError, cls: type[e.ConsulError]) -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        raise exc

    async def go() -> None:
        async with client(handler) as c:
            await c.status_leader()

    with pytest.raises(cls) as info:
        run(go())
    assert info.value.status is None
    assert isinstance(info.value, e.ConsulUnavailable)


def test_token_never_in_transport_error_message() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"failed with header {req.headers['x-consul-token']}")

    async def go() -> None:
        async with client(handler) as c:
            await c.kv_get("k")

    with pytest.raises(e.ConsulUnreachable) as info:
        run(go())
    assert TOKEN not in str(info.value)
    assert TOKEN not in repr(info.value)
    assert "***" in str(info.value)


def test_whole_exchange_deadline_from_request_timeout() -> None:
    async def handler(req: httpx.Request) -> httpx.Response:
        await asyncio.sleep(30)
        return httpx.Response(200, json="")

    async def go() -> None:
        async with client(handler) as c:
            await c.status_leader(dc="dc3", timeout=0.05)

    with pytest.raises(e.ConsulTimeout):
        run(go())


def test_default_timeout_applies_when_request_has_none() -> None:
    async def handler(req: httpx.Request) -> httpx.Response:
        await asyncio.sleep(30)
        return httpx.Response(200, json="")

    async def go() -> None:
        async with client(handler, default_timeout=0.05) as c:
            await c.catalog_datacenters()

    with pytest.raises(e.ConsulTimeout):
        run(go())


def test_repr_masks_token() -> None:
    async def go() -> str:
        async with client(lambda req: httpx.Response(200)) as c:
            return repr(c)

    text = run(go())
    assert TOKEN not in text
    assert "***" in text


# --- Real transport on 127.0.0.1 / unix socket ------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_connection_refused_is_unreachable() -> None:
    port = free_port()

    async def go() -> None:
        async with AsyncConsul(ConsulConfig(address=f"http://127.0.0.1:{port}")) as c:
            await c.status_leader(timeout=2.0)

    with pytest.raises(e.ConsulUnreachable):
        run(go())


async def _serve_once(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, lines: list[bytes], reply: bytes | None
) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    lines.extend(head.split(b"\r\n"))
    if reply is None:
        await asyncio.sleep(30)
    writer.write(reply or b"")
    await writer.drain()
    writer.close()


def test_real_http_exchange_keeps_flag_params() -> None:
    lines: list[bytes] = []
    reply = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Consul-Index: 12\r\n"
        b"X-Consul-KnownLeader: true\r\nX-Consul-LastContact: 3\r\nContent-Length: 2\r\n"
        b"Connection: close\r\n\r\n[]"
    )

    async def go() -> s.KvRead:
        server = await asyncio.start_server(
            lambda r, w: _serve_once(r, w, lines, reply), "127.0.0.1", 0
        )
        port = server.sockets[0].getsockname()[1]
        async with server:
            cfg = ConsulConfig.from_env({"CONSUL_HTTP_ADDR": f"127.0.0.1:{port}", "CONSUL_HTTP_TOKEN": TOKEN})
            async with AsyncConsul(cfg) as c:
                return await c.kv_get("svc/", recurse=True, consistency="stale", timeout=5.0)

    read = run(go())
    assert read.meta == s.QueryMeta(12, True, 3, None)
    assert lines[0] == b"GET /v1/kv/svc/?stale&recurse HTTP/1.1"
    assert f"X-Consul-Token: {TOKEN}".encode().lower() in [x.lower() for x in lines]


def test_real_server_that_never_answers_times_out() -> None:
    lines: list[bytes] = []

    async def go() -> None:
        server = await asyncio.start_server(lambda r, w: _serve_once(r, w, lines, None), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server, AsyncConsul(ConsulConfig(address=f"http://127.0.0.1:{port}")) as c:
            await c.status_leader(dc="dc2", timeout=0.2)

    with pytest.raises(e.ConsulTimeout):
        run(go())
    assert lines[0] == b"GET /v1/status/leader?dc=dc2 HTTP/1.1"


def test_unix_socket_transport(tmp_path: Path) -> None:
    path = str(tmp_path / "consul.sock")
    lines: list[bytes] = []
    reply = b'HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\n["dc1"]\n'

    async def go() -> list[str]:
        server = await asyncio.start_unix_server(lambda r, w: _serve_once(r, w, lines, reply), path)
        async with server:
            cfg = ConsulConfig.from_env({"CONSUL_HTTP_ADDR": f"unix://{path}"})
            async with AsyncConsul(cfg) as c:
                result: list[str] = await c.catalog_datacenters(timeout=5.0)
                return result

    assert run(go()) == ["dc1"]
    assert lines[0] == b"GET /v1/catalog/datacenters HTTP/1.1"
