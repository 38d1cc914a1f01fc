"""`GET /v1/locks/<name>`: a global lock as this replica sees it (docs/global-lock.md).

Body (JSON): ``{"name", "held", "holder", "term", "valid_for_ms", "index", "dc"}``; HTTP
200 when this replica holds the lock now, 503 when not, 404 for a lock that is not in
the topology's ``global_locks``. ``held: true`` means: act under fencing token ``term``
for at most ``valid_for_ms`` from when you SENT the request (rounded down; already bounded
by this DC's may-write lease). When not held, ``holder``/``term`` name the claimant
written in a majority of the registers, if any (display only: it may be stale).

Long-poll: ``?index=N&wait=D`` (Consul's rules, coordinator.daemon.blocking) returns once
the lock's ``index`` moves past N or after D. The lock index is re-read every `POLL`
seconds (lock changes do not wake the runner's may-write waiters), so a change is seen
within POLL.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

from aiohttp import web

from coordinator.core.globallock import GlobalAnswer
from coordinator.daemon.blocking import BlockingParamError, parse_blocking
from coordinator.daemon.runner import Runner

POLL = 0.02
INDEX_HEADER = "X-Coordinator-Index"


def _answer(runner: Runner, name: str) -> GlobalAnswer | None:
    globals_ = getattr(runner.core, "globals", None)
    if globals_ is None:
        return None
    ans: GlobalAnswer | None = globals_.answer(name, runner.clock())
    return ans


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def lock_body(ans: GlobalAnswer, dc: str | None) -> dict[str, object]:
    return {
        "name": ans.name,
        "held": ans.held,
        "holder": ans.holder,
        "term": ans.holder_term if not ans.held else ans.term,
        "valid_for_ms": max(int(ans.valid_for * 1000), 0) if ans.held else 0,
        "index": ans.index,
        "dc": dc,
    }


def lock_handler(runner: Runner) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        if request.method not in ("GET", "HEAD"):
            return web.json_response(
                {"error": f"method {request.method} not allowed on {request.path}"},
                status=405,
                headers={"Allow": "GET, HEAD"},
            )
        name = request.match_info["name"]
        ans = _answer(runner, name)
        if ans is None:
            return _error(404, f"no global lock {name!r} (see global_locks in the topology)")
        try:
            blocking = parse_blocking(request.query) if request.query_string else None
        except BlockingParamError as exc:
            return _error(400, str(exc))
        if blocking is not None:
            deadline = runner.clock() + blocking.wait
            while ans is not None and ans.index <= blocking.index and runner.clock() < deadline:
                await asyncio.sleep(min(POLL, max(deadline - runner.clock(), 0.0)))
                ans = _answer(runner, name)
            if ans is None:
                return _error(404, f"no global lock {name!r}")
        dc = getattr(runner.core, "dc", None)
        body = json.dumps(lock_body(ans, dc if isinstance(dc, str) else None), separators=(",", ":"))
        return web.Response(
            status=200 if ans.held else 503,
            body=body.encode(),
            content_type="application/json",
            headers={INDEX_HEADER: str(ans.index)},
        )

    return handler


def add_lock_routes(app: web.Application, runner: Runner) -> None:
    """Register ``/v1/locks/{name}`` (call before the catch-all 404 route)."""
    app.router.add_route("*", "/v1/locks/{name}", lock_handler(runner))
