"""`coordinator run`: wire topology, Consul client, ReplicaCore, runner and API, then serve.

Start-up contract (each failure is a `StartupError`: one line, and an exit code):

1. the topology file must load (exit 2), the CONSUL_* settings must parse (exit 2), the
   admin token file, when given, must be readable and non-empty (exit 2), ``--listen``
   must be HOST:PORT (exit 2);
2. the DC is ``--dc`` or else the local agent's datacenter from /v1/agent/self (agent
   unreachable or garbage: exit 1); a DC not in the topology: exit 2;
3. the listening socket is bound BEFORE the core is built, so port 0 works and the core
   is told the real API address; then one JSON line
   ``{"listening": URL, "dc": DC, "id": ID}`` is written to stdout and flushed;
4. SIGTERM/SIGINT start a graceful stop, then exit 0: AdminAction.SHUTDOWN (may-write
   and every global lock answer no at once), then the core waits until every "yes" it
   handed out has run out (at most one DC lease), frees the global registers, releases
   the DC leader key and destroys its session. The process waits for that at most
   `runner.shutdown_grace(core)` seconds (lease + release writes + slack, >= 5 s;
   docs/operations.md, "Stopping"). Further signals during the stop are ignored.

Once serving, everything allocated during start-up (imported modules, the app, the core)
is moved to the GC's permanent generation (`gc.freeze`; undone on exit). A full cyclic
collection is rare in steady state (none in 20 s of 5.8k req/s), but when one comes it
stalls the event loop, and every in-flight may-write, for as long as it scans: 16-70 ms
over those ~45k objects on a loaded 2-core host; after the freeze it scans only what was
allocated since.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import signal
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TextIO

from aiohttp import web

from coordinator.config import ConfigError, load_topology
from coordinator.consul.client import AsyncConsul
from coordinator.consul.config import ConsulConfig, ConsulConfigError
from coordinator.consul.errors import ConsulError
from coordinator.core.topology import Topology
from coordinator.daemon.api import Api
from coordinator.daemon.logsetup import register_secrets
from coordinator.daemon.metrics import Metrics
from coordinator.daemon.runner import Runner, shutdown_grace
from coordinator.daemon.transitions import TransitionLog

log = logging.getLogger("coordinator.daemon")

SHUTDOWN_GRACE = 5.0
"""The least a graceful stop waits (runner.MIN_SHUTDOWN_GRACE); the real bound is
`runner.shutdown_grace(core)`, which grows with the lease and the release budget."""
AGENT_SELF_TIMEOUT = 5.0


class StartupError(Exception):
    """A start-up failure: `str()` is the one line to print, `code` the exit status."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class RunOptions:
    config: str
    dc: str | None = None
    consul: str | None = None
    listen: str = "127.0.0.1:8787"
    replica_id: str = "coordinator"
    admin_token_file: str | None = None


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port_text = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise StartupError(f"--listen {text!r}: expected HOST:PORT, e.g. 127.0.0.1:8787")
    return host, int(port_text)


def read_admin_token(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            token = fh.read().strip()
    except OSError as exc:
        raise StartupError(f"--admin-token-file {path}: {exc.strerror or exc}") from None
    if not token:
        raise StartupError(f"--admin-token-file {path}: the file is empty")
    return token


def load_settings(opts: RunOptions, environ: Mapping[str, str]) -> tuple[Topology, ConsulConfig, str | None]:
    """Step 1 of the start-up contract (no network)."""
    try:
        topology = load_topology(opts.config)
    except ConfigError as exc:
        raise StartupError(str(exc)) from None
    try:
        consul_config = ConsulConfig.from_env(environ, address_override=opts.consul)
    except ConsulConfigError as exc:
        raise StartupError(str(exc)) from None
    except OSError as exc:
        raise StartupError(f"CONSUL_HTTP_TOKEN_FILE: {exc.strerror or exc}") from None
    admin_token = read_admin_token(opts.admin_token_file) if opts.admin_token_file else None
    parse_listen(opts.listen)
    if opts.dc is not None:
        check_dc(topology, opts.dc)
    return topology, consul_config, admin_token


def check_dc(topology: Topology, dc: str) -> None:
    if dc not in topology.names:
        known = ", ".join(topology.names)
        raise StartupError(
            f"datacenter {dc!r} is not in the topology of cluster {topology.cluster!r} (known: {known})"
        )


async def discover_dc(consul: AsyncConsul, address: str) -> str:
    try:
        agent = await consul.agent_self(timeout=AGENT_SELF_TIMEOUT)
    except ConsulError as exc:
        raise StartupError(
            f"cannot learn the datacenter from the Consul agent at {address}: {exc}; pass --dc", code=1
        ) from None
    return agent.datacenter


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise StartupError(f"--listen {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def serve(opts: RunOptions, environ: Mapping[str, str], out: TextIO) -> int:
    """Run the daemon until SIGTERM/SIGINT; see the module contract. Raises StartupError."""
    topology, consul_config, admin_token = load_settings(opts, environ)
    register_secrets(consul_config.token, admin_token)
    from coordinator.core.replica import ReplicaCore  # the core lands in parallel

    host, port = parse_listen(opts.listen)
    async with AsyncConsul(consul_config) as consul:
        dc = opts.dc or await discover_dc(consul, consul_config.address)
        check_dc(topology, dc)
        sock = bind(host, port)
        url = _url(sock)
        core = ReplicaCore(topology, dc, opts.replica_id, api_address=url)
        runner = Runner(core, consul)
        transitions = TransitionLog(runner.status, dc)
        runner.add_answer_listener(transitions.poll)
        api = Api(runner, Metrics(runner, transitions), admin_token=admin_token)
        app_runner = web.AppRunner(api.app(), access_log=None, handle_signals=False)
        await app_runner.setup()
        await web.SockSite(app_runner, sock).start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        gc.collect()
        gc.freeze()
        try:
            runner.start()
            out.write(json.dumps({"listening": url, "dc": dc, "id": opts.replica_id}) + "\n")
            out.flush()
            log.info(
                "started cluster=%s dc=%s id=%s api=%s consul=%s admin_api=%s",
                topology.cluster,
                dc,
                opts.replica_id,
                url,
                consul_config.address,
                "enabled" if admin_token else "disabled",
            )
            await stop.wait()
            grace = max(SHUTDOWN_GRACE, shutdown_grace(core))
            log.info(
                "signal received: shutting down (answering no now; releasing the locks once every "
                "yes handed out has run out; at most %.1fs)",
                grace,
            )
            finished = await runner.shutdown(grace)
            if not finished:
                log.warning("core did not finish its shutdown within %.1fs; exiting anyway", grace)
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            await runner.close()
            await app_runner.cleanup()
            gc.unfreeze()
    log.info("stopped")
    return 0
