"""CLI: `python -m sim.consul --datacenters dc1,dc2,dc3 [options]`.

Serves DC number k (0-based) on port http-port+k (`--http-port 0`: free ports), prints ONE
JSON line `{"datacenters": {"dc1": "http://127.0.0.1:18500", ...}}` (an IPv6 `--bind` is
bracketed: `http://[::1]:18500`; `--bind localhost` serves and prints 127.0.0.1) once every
DC answers HTTP, runs until SIGINT/SIGTERM and exits 0. Bad arguments: one line on stderr,
exit 2; a port that cannot be served (in use): one line, exit 1.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import math
import os
import re
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn

from sim.consul.server import Emulator, EmulatorConfig
from sim.consul.sessions import EXPIRY_MODES

STOP_GRACE = 1.0
"""Seconds in-flight requests get to finish after SIGTERM/SIGINT."""
_DC_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_PEER_URL = re.compile(r"^https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?$")


def _valid_bind(addr: str) -> bool:
    """An IPv4 or IPv6 literal, or `localhost`. Anything else would fail only at bind time
    (a runtime error, exit 1, instead of a bad argument, exit 2). An IPv6 address with a
    zone (`fe80::1%eth0`) is refused: its URL would need the zone percent-encoded."""
    if addr == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    return not (isinstance(ip, ipaddress.IPv6Address) and ip.scope_id)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def _parser() -> _Parser:
    p = _Parser(prog="python -m sim.consul", description="Consul HTTP API emulator (one or more DCs)")
    p.add_argument("--datacenters", required=True, help="comma-separated DC names served by this process")
    p.add_argument("--bind", default="127.0.0.1")
    p.add_argument("--http-port", type=int, default=18500, help="port of the first DC; 0 = free ports")
    p.add_argument("--peer", action="append", default=[], metavar="DC=URL",
                   help="a DC served by another emulator process (repeatable)")
    p.add_argument("--forward-timeout", type=float, default=10.0,
                   help="seconds a request to an unreachable DC hangs before failing")
    p.add_argument("--session-expiry", choices=EXPIRY_MODES, default="2ttl")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--acl-master-token", default=None)
    p.add_argument("--rpc-hold-timeout", type=float, default=0.0,
                   help="seconds a leaderless server holds a request before 'No cluster leader'")
    p.add_argument("--wan-fail-after", type=float, default=30.0,
                   help="seconds a cut link takes before WAN gossip marks the DC failed")
    return p


def parse_config(argv: list[str]) -> EmulatorConfig:
    parser = _parser()
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.datacenters.split(",")]
    if not names or any(not _DC_NAME.match(n) for n in names):
        parser.error(f"--datacenters: invalid datacenter list {args.datacenters!r}")
    if len(set(names)) != len(names):
        parser.error(f"--datacenters: duplicate datacenter in {args.datacenters!r}")
    peers: dict[str, str] = {}
    for spec in args.peer:
        name, sep, url = spec.partition("=")
        if not sep or not _DC_NAME.match(name) or not _PEER_URL.match(url.rstrip("/")):
            parser.error(f"--peer: expected DC=http://HOST:PORT, got {spec!r}")
        if name in names or name in peers:
            parser.error(f"--peer: duplicate datacenter {name!r}")
        peers[name] = url.rstrip("/")
    if not _valid_bind(args.bind):
        parser.error(f"--bind: expected an IPv4/IPv6 address or localhost, got {args.bind!r}")
    if not 0 <= args.http_port <= 65535 - len(names):
        parser.error(f"--http-port: out of range: {args.http_port}")
    for flag in ("forward_timeout", "rpc_hold_timeout", "wan_fail_after"):
        value = getattr(args, flag)
        if not math.isfinite(value) or value < 0 or (flag == "forward_timeout" and value == 0):
            parser.error(f"--{flag.replace('_', '-')}: must be a finite positive number of seconds")
    return EmulatorConfig(
        datacenters=names, bind=args.bind, http_port=args.http_port, peers=peers,
        forward_timeout=args.forward_timeout, session_expiry=args.session_expiry, seed=args.seed,
        acl_master_token=args.acl_master_token, rpc_hold_timeout=args.rpc_hold_timeout,
        wan_fail_after=args.wan_fail_after,
    )


async def _run(config: EmulatorConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    emulator = Emulator(config)
    try:
        urls = await emulator.start()
        sys.stdout.write(json.dumps({"datacenters": urls}) + "\n")
        sys.stdout.flush()
        await stop.wait()
    finally:
        drained = await emulator.stop(STOP_GRACE)
    if not drained:
        # Requests still parked after the grace: end the process now, so the kernel closes
        # their connections unanswered (a stopping Consul agent never answers them 500).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def _event_loop_runner() -> Callable[[Coroutine[Any, Any, None]], None]:
    """uvloop when installed (roughly doubles requests/s on one core), else asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    run: Callable[[Coroutine[Any, Any, None]], None] = uvloop.run
    return run


def main(argv: list[str] | None = None) -> int:
    config = parse_config(sys.argv[1:] if argv is None else argv)
    try:
        _event_loop_runner()(_run(config))
    except OSError as err:
        sys.stderr.write(f"python -m sim.consul: error: {err}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
