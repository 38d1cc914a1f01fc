"""A real TLS handshake: the client configured only through Consul's env variables
(CONSUL_HTTP_ADDR=https://..., CONSUL_CACERT, CONSUL_CLIENT_CERT/KEY) talks to an HTTPS
server that requires a client certificate. Certificates are made with the openssl CLI;
the test skips (with the reason) where openssl is missing."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest
from aiohttp import web

from coordinator.consul.client import AsyncConsul
from coordinator.consul.config import ConsulConfig
from coordinator.consul.errors import ConsulUnreachable
from coordinator.consul.sansio import agent_self, parse_agent_self

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _pki(d: Path) -> None:
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
             "-days", "1", "-subj", "/CN=test-ca", cwd=d)
    for name, cn in (("server", "localhost"), ("client", "coordinator")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", f"/CN={cn}", cwd=d)
        (d / f"{name}.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{name}.pem", "-days", "1", "-extfile", f"{name}.ext", cwd=d)


async def _serve(d: Path) -> tuple[web.AppRunner, int]:
    async def self_(request: web.Request) -> web.Response:
        return web.json_response({"Config": {"Datacenter": "dc1", "NodeName": "n1"}, "Member": {}})

    app = web.Application()
    app.router.add_get("/v1/agent/self", self_)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(d / "ca.pem"))
    ctx.load_cert_chain(str(d / "server.pem"), str(d / "server.key"))
    ctx.verify_mode = ssl.CERT_REQUIRED
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, port


def test_mutual_tls_from_consul_env_variables(tmp_path: Path) -> None:
    _pki(tmp_path)

    async def body() -> None:
        runner, port = await _serve(tmp_path)
        try:
            env = {
                "CONSUL_HTTP_ADDR": f"https://127.0.0.1:{port}",
                "CONSUL_CACERT": str(tmp_path / "ca.pem"),
                "CONSUL_CLIENT_CERT": str(tmp_path / "client.pem"),
                "CONSUL_CLIENT_KEY": str(tmp_path / "client.key"),
            }
            async with AsyncConsul(ConsulConfig.from_env(env)) as consul:
                me = parse_agent_self(await consul.send(agent_self()))
                assert me.datacenter == "dc1" and me.node_name == "n1"
            # Without the client certificate the server refuses the handshake.
            no_cert = {k: v for k, v in env.items() if not k.startswith("CONSUL_CLIENT")}
            async with AsyncConsul(ConsulConfig.from_env(no_cert)) as consul:
                with pytest.raises(ConsulUnreachable):
                    await consul.send(agent_self())
            # A CA that did not sign the server certificate is refused too.
            other = tmp_path / "other"
            other.mkdir()
            _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "o.key", "-out", "o.pem",
                     "-days", "1", "-subj", "/CN=other", cwd=other)
            wrong_ca = {**env, "CONSUL_CACERT": str(other / "o.pem")}
            async with AsyncConsul(ConsulConfig.from_env(wrong_ca)) as c:
                with pytest.raises(ConsulUnreachable):
                    await c.send(agent_self())
        finally:
            await runner.cleanup()

    asyncio.run(body())
