"""The emulator's HTTP listener (sim/consul/listen.py, granian): binding, framing, shutdown.

What the switch from aiohttp to granian could break and Consul's clients rely on:
a busy port is an error (not silently shared through SO_REUSEPORT), bodies arrive whole
(Content-Length or chunked), query strings decode like Go's `url.ParseQuery`, an oversized
body is refused unread, and SIGTERM ends the process at once even with blocking queries
parked (their wait was minutes).
"""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest
from emu_helpers import http_reply_length, start_emulator

pytestmark = pytest.mark.integration


def _raw(url: str, request: bytes) -> bytes:
    host, port = url.split("//", 1)[1].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while http_reply_length(data) is None:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


def test_port_already_served_is_refused_with_one_line() -> None:
    first = start_emulator(["dc1"])
    try:
        port = first.host_port("dc1")[1]
        done = subprocess.run([sys.executable, "-m", "sim.consul", "--datacenters", "dc1",
                               "--http-port", str(port)], capture_output=True, text=True, timeout=30)
        assert done.returncode == 1
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
        assert "in use" in lines[0].lower()
        # the first emulator still answers alone: nothing was shared with the refused one
        for _ in range(20):
            assert httpx.get(first.urls["dc1"] + "/v1/agent/self").json()["Config"]["Datacenter"] == "dc1"
    finally:
        assert first.stop() == 0


def test_chunked_body_query_decoding_and_oversized_body() -> None:
    emu = start_emulator(["dc1"])
    try:
        url = emu.urls["dc1"]
        head = _raw(url, b"PUT /v1/kv/chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        got = httpx.get(url + "/v1/kv/chunked").json()[0]
        assert base64.b64decode(got["Value"]) == b"abcde"
        # in the query `+` is a space and %XX is decoded (Go's url.ParseQuery), a bare flag
        # is set; in the path `+` stays a plus and %XX is decoded
        httpx.put(url + "/v1/kv/q/a b", content=b"1")
        assert _raw(url, b"GET /v1/kv/q/?keys&separator=+ HTTP/1.1\r\nHost: x\r\n\r\n").endswith(
            b'["q/a "]')
        assert _raw(url, b"GET /v1/kv/q/?keys&separator=%2B HTTP/1.1\r\nHost: x\r\n\r\n").endswith(
            b'["q/a b"]')
        assert _raw(url, b"GET /v1/kv/q/a%20b HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 200")
        assert _raw(url, b"GET /v1/kv/q/a+b HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 404")
        # declared 9 MiB, nothing sent: answered 413 at once, without waiting for the body
        head = _raw(url, b"PUT /v1/kv/big HTTP/1.1\r\nHost: x\r\nContent-Length: 9437184\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 413")
        assert httpx.get(url + "/v1/kv/big").status_code == 404
    finally:
        assert emu.stop() == 0


def test_sigterm_with_parked_blocking_queries_exits_0_promptly() -> None:
    emu = start_emulator(["dc1", "dc2"])
    socks: list[socket.socket] = []
    try:
        url = emu.urls["dc1"]
        httpx.put(url + "/v1/kv/parked", content=b"1")
        index = httpx.get(url + "/v1/kv/parked").headers["X-Consul-Index"]
        host, port = emu.host_port("dc1")
        for query in (f"index={index}&wait=10m", f"index={index}&wait=10m&dc=dc2"):
            sock = socket.create_connection((host, port), timeout=10)
            sock.sendall(f"GET /v1/kv/parked?{query} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            socks.append(sock)
        time.sleep(0.5)
        assert json.loads(httpx.get(url + "/_emulator/state").text)["datacenters"]["dc1"]["keys"] == 1
        emu.proc.send_signal(signal.SIGTERM)
        # the parked queries would hold a draining server for 10 minutes
        assert emu.proc.wait(timeout=15) == 0
        # ... and they are not answered (a stopping Consul agent sends no 500): the
        # connection just closes
        for sock in socks:
            assert sock.recv(65536) == b""
    finally:
        for sock in socks:
            sock.close()
        emu.stop()


def test_bind_localhost_serves_on_127_0_0_1() -> None:
    emu = start_emulator(["dc1"], extra_args=["--bind", "localhost"])
    try:
        url = emu.urls["dc1"]
        assert url.startswith("http://127.0.0.1:")
        assert httpx.get(url + "/v1/status/leader").status_code == 200
    finally:
        assert emu.stop() == 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="abstract Unix sockets are Linux-only")
def test_port_claimed_by_another_emulator_is_refused() -> None:
    """The claim closes the window between the probe bind and granian's SO_REUSEPORT bind:
    hold the claim of a free port here, as a second emulator starting at the same instant
    would, and the emulator must refuse the port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as claim:
        claim.bind(f"\0sim.consul 127.0.0.1 {port}")
        done = subprocess.run([sys.executable, "-m", "sim.consul", "--datacenters", "dc1",
                               "--http-port", str(port)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"python -m sim.consul: error: 127.0.0.1:{port}: address already in use (by another emulator)"]


def test_chunked_body_over_the_cap_is_413() -> None:
    emu = start_emulator(["dc1"])
    try:
        host, port = emu.host_port("dc1")
        with socket.create_connection((host, port), timeout=30) as sock:
            sock.sendall(b"PUT /v1/kv/huge HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            chunk = b"x" * (1 << 20)
            try:
                for _ in range(9):
                    sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                sock.sendall(b"0\r\n\r\n")
            except OSError:
                pass  # the server may answer and close before the last chunks
            reply = b""
            while b"max size" not in reply:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                reply += chunk
        # the listener's own cap (refused while reading), not the KV route's 512 KiB check
        # after the whole body was buffered
        assert reply.startswith(b"HTTP/1.1 413")
        assert reply.endswith(b"Request body too large, max size: 8388608 bytes")
        assert httpx.get(emu.urls["dc1"] + "/v1/kv/huge").status_code == 404
    finally:
        assert emu.stop() == 0


def test_service_register_with_wrongly_typed_fields_is_400() -> None:
    """Consul decodes into typed structs; the emulator used to crash (500) on these."""
    emu = start_emulator(["dc1"])
    try:
        url = emu.urls["dc1"] + "/v1/agent/service/register"
        for body in ({"Name": "a", "Port": "x"}, {"Name": "a", "Port": 1.5}, {"Name": "a", "Checks": [1]},
                     {"Name": "a", "Tags": "t"}, {"Name": "a", "Meta": {"k": 1}}, {"Name": "a", "Check": []}):
            r = httpx.put(url, json=body)
            assert r.status_code == 400, (body, r.status_code, r.text)
            assert r.text.startswith("Request decode failed: json: cannot unmarshal "), r.text
        good = {"Name": "a", "Port": 80, "Tags": ["t"], "Meta": {"k": "v"}}
        assert httpx.put(url, json=good).status_code == 200
    finally:
        assert emu.stop() == 0


async def _serve_one(handler_error: Exception) -> tuple[int, bytes]:
    from sim.consul.http_types import Reply, Request
    from sim.consul.listen import Listener

    async def handler(req: Request) -> Reply:
        raise handler_error

    listener = Listener("127.0.0.1", 0, handler)

    async def probe() -> bool:
        return True

    await listener.start(probe)
    try:
        async with httpx.AsyncClient() as client:
            r = await client.get(f"http://127.0.0.1:{listener.port}/v1/kv/x")
            return r.status_code, r.content
    finally:
        assert await listener.stop(1.0)


def test_a_handler_bug_is_a_500_naming_it_and_a_traceback(capfd: pytest.CaptureFixture[str]) -> None:
    status, body = asyncio.run(_serve_one(KeyError("no such thing")))
    assert status == 500
    assert body == b"emulator bug: KeyError: 'no such thing'"
    err = capfd.readouterr().err
    assert "sim.consul: GET /v1/kv/x failed:" in err
    assert "Traceback (most recent call last)" in err and "KeyError: 'no such thing'" in err
