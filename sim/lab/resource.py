"""The protected resource: a tiny HTTP service that accepts writes carrying fencing tokens.

``POST /write`` with JSON ``{"dc": DC, "replica": ID, "token": N}``: accepted (200) when N
is at least the highest token this service has accepted for that DC, rejected (409, body
``{"accepted": false, "highest": M}``) otherwise. ``GET /state`` returns the highest
accepted token per DC. Every attempt, accepted or not, is logged as one JSON line
``{"mono": <time.monotonic()>, "kind": "write", "dc", "replica", "token", "accepted"}``
(CLOCK_MONOTONIC is shared by every process on the machine, so the harness can merge
this log with its own events).

Invariant: for each DC the sequence of accepted tokens never decreases.

Run standalone: ``python -m sim.lab.resource --listen HOST:PORT --log FILE``; prints one
JSON line ``{"listening": URL}`` once bound; SIGTERM/SIGINT exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from typing import IO, Any

from aiohttp import web


class ResourceState:
    """Pure decision: accept a token iff it is >= the highest accepted for its DC."""

    def __init__(self) -> None:
        self.highest: dict[str, int] = {}

    def attempt(self, dc: str, token: int) -> bool:
        best = self.highest.get(dc)
        if best is not None and token < best:
            return False
        self.highest[dc] = token
        return True


def make_app(state: ResourceState, log: IO[str]) -> web.Application:
    async def write(request: web.Request) -> web.Response:
        try:
            body: Any = await request.json()
            dc, replica, token = str(body["dc"]), str(body["replica"]), body["token"]
            if not isinstance(token, int) or isinstance(token, bool):
                raise TypeError("token must be an integer")
        except (ValueError, KeyError, TypeError) as exc:
            return web.json_response({"error": f"bad write: {exc}"}, status=400)
        accepted = state.attempt(dc, token)
        record = {"mono": time.monotonic(), "kind": "write", "dc": dc, "replica": replica,
                  "token": token, "accepted": accepted}
        log.write(json.dumps(record, separators=(",", ":")) + "\n")
        log.flush()
        return web.json_response(
            {"accepted": accepted, "highest": state.highest.get(dc)}, status=200 if accepted else 409
        )

    async def get_state(request: web.Request) -> web.Response:
        return web.json_response(state.highest)

    app = web.Application(handler_args={"access_log": None})
    app.router.add_post("/write", write)
    app.router.add_get("/state", get_state)
    return app


async def serve(host: str, port: int, log_path: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    with open(log_path, "a", encoding="utf-8") as log:
        runner = web.AppRunner(make_app(ResourceState(), log), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        bound = sockets[0].getsockname()[1] if sockets else port
        sys.stdout.write(json.dumps({"listening": f"http://{host}:{bound}"}) + "\n")
        sys.stdout.flush()
        try:
            await stop.wait()
        finally:
            await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim.lab.resource")
    parser.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT (port 0 = any free port)")
    parser.add_argument("--log", required=True, help="JSON-lines file every attempt is appended to")
    args = parser.parse_args(argv)
    host, _, port = str(args.listen).rpartition(":")
    if not host or not port.isdigit():
        parser.error(f"--listen: expected HOST:PORT, got {args.listen!r}")
    asyncio.run(serve(host, int(port), args.log))
    return 0


if __name__ == "__main__":
    sys.exit(main())
