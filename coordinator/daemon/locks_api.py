"""`/v1/locks/<name>`: a global lock as this replica sees it (docs/global-lock.md).

``GET /v1/locks/<name>`` body (JSON): ``{"name", "held", "holder", "term", "valid_for_ms",
"index", "dc", "replica", "leader"}`` (``replica``: the answering replica's id; ``leader``:
its DC leader's replica id as it sees it, null when unknown; clients long-poll the
leader); HTTP 200 when this replica holds the lock now, 503 when not, 404 for a
lock that is not in the topology's ``global_locks``. ``held: true`` means: act under
fencing token ``term`` for at most ``valid_for_ms`` from when you SENT the request
(rounded down; already bounded by this DC's may-write lease). When not held,
``holder``/``term`` name the claimant written in a majority of the registers, if any
(display only: it may be stale).

Long-poll: ``?index=N&wait=D`` (Consul's rules, coordinator.daemon.blocking) returns once
the lock's ``index`` differs from N or after D. The wait is event-driven: the runner
wakes lock waiters when a core step moved the core's ``lock_index``
(`Runner.wait_for_lock_change`), so a change is answered at once and an idle wait costs
no wake-ups.

``POST /v1/locks/<name>/release[?hold_off=D]`` (admin: bearer token; 401/403 like the
other admin endpoints): graceful hand-over. This replica stops holding at once (every
answer is "no" from then on), and frees the registers it claims (CAS ``holder=""``, same
term) once every "yes" it handed out has run out plus a drift pad (at once if none
runs: `GlobalLock.release`, docs/global-lock.md "Graceful release"); the response does
not wait for those writes. It does not contend again for ``hold_off`` (Go duration,
default ``lease + margin`` of the lock, at most 10 minutes) nor while its release writes
are pending. 200 with ``{"name", "released", "hold_off_ms", ...the GET body}``
(``released``: this replica was holding or acquiring); 409 when this replica is not its
DC's leader (only the leader contends: ask it), 404 unknown lock, 400 bad ``hold_off``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from aiohttp import web

from coordinator.consul.durations import parse_go_duration
from coordinator.core.globallock import GlobalAnswer, GlobalRole
from coordinator.daemon.blocking import MAX_WAIT, BlockingParamError, parse_blocking
from coordinator.daemon.runner import Runner

INDEX_HEADER = "X-Coordinator-Index"

AdminCheck = Callable[[web.Request], web.Response | None]
"""Returns the 401/403 response for a request without a valid admin token, else None."""


def _globals(runner: Runner) -> object | None:
    return getattr(runner.core, "globals", None)


def _answer(runner: Runner, name: str) -> GlobalAnswer | None:
    globals_ = _globals(runner)
    if globals_ is None:
        return None
    ans: GlobalAnswer | None = globals_.answer(name, runner.clock())  # type: ignore[attr-defined]
    return ans


def _index(runner: Runner, name: str) -> int | None:
    globals_ = _globals(runner)
    if globals_ is None:
        return None
    index: int | None = globals_.lock_index(name)  # type: ignore[attr-defined]
    return index


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _not_allowed(request: web.Request, allow: str) -> web.Response:
    return web.json_response(
        {"error": f"method {request.method} not allowed on {request.path}"},
        status=405,
        headers={"Allow": allow},
    )


def lock_body(ans: GlobalAnswer, dc: str | None, replica: str | None = None,
              leader: str | None = None) -> dict[str, object]:
    return {
        "name": ans.name,
        "held": ans.held,
        "holder": ans.holder,
        "term": ans.holder_term if not ans.held else ans.term,
        "valid_for_ms": max(int(ans.valid_for * 1000), 0) if ans.held else 0,
        "index": ans.index,
        "dc": dc,
        "replica": replica,
        "leader": leader,
    }


def _dc(runner: Runner) -> str | None:
    dc = getattr(runner.core, "dc", None)
    return dc if isinstance(dc, str) else None


def _identity(runner: Runner) -> tuple[str | None, str | None]:
    """(this replica's id, its DC leader's replica id as its election sees it)."""
    status = runner.status()
    return status.replica_id, status.leader


def _respond(runner: Runner, ans: GlobalAnswer, extra: dict[str, object] | None = None) -> web.Response:
    body = {**(extra or {}), **lock_body(ans, _dc(runner), *_identity(runner))}
    return web.Response(
        status=200 if ans.held or extra is not None else 503,
        body=json.dumps(body, separators=(",", ":")).encode(),
        content_type="application/json",
        headers={INDEX_HEADER: str(ans.index)},
    )


def lock_handler(runner: Runner) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        if request.method not in ("GET", "HEAD"):
            return _not_allowed(request, "GET, HEAD")
        name = request.match_info["name"]
        if _index(runner, name) is None:
            return _error(404, f"no global lock {name!r} (see global_locks in the topology)")
        try:
            blocking = parse_blocking(request.query) if request.query_string else None
        except BlockingParamError as exc:
            return _error(400, str(exc))
        if blocking is not None:
            want = blocking.index
            await runner.wait_for_lock_change(lambda: _index(runner, name) != want, blocking.wait)
        ans = _answer(runner, name)
        if ans is None:
            return _error(404, f"no global lock {name!r}")
        return _respond(runner, ans)

    return handler


def _hold_off(request: web.Request, default: float) -> float:
    text = request.query.get("hold_off")
    if text is None:
        return default
    try:
        seconds = parse_go_duration(text)
    except ValueError:
        raise BlockingParamError(f"invalid hold_off {text!r}: use a duration such as 5s or 1m") from None
    if not 0 <= seconds <= MAX_WAIT:
        raise BlockingParamError(f"invalid hold_off {text!r}: must be between 0 and 10m")
    return seconds


def release_handler(runner: Runner, admin: AdminCheck) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        if request.method != "POST":
            return _not_allowed(request, "POST")
        denied = admin(request)
        if denied is not None:
            return denied
        name = request.match_info["name"]
        globals_ = _globals(runner)
        lock = getattr(globals_, "locks", {}).get(name)
        if lock is None:
            return _error(404, f"no global lock {name!r} (see global_locks in the topology)")
        try:
            hold_off = _hold_off(request, lock.spec.lease + lock.spec.margin)
        except BlockingParamError as exc:
            return _error(400, str(exc))
        role = lock.role
        if role is GlobalRole.INACTIVE:
            return _error(409, f"this replica does not lead its DC (no hold on {name!r}): ask the leader")
        runner.run_core(runner.core.release_global, name, hold_off)  # type: ignore[attr-defined]
        ans = _answer(runner, name)
        assert ans is not None
        released = role in (GlobalRole.HOLDER, GlobalRole.CANDIDATE)
        return _respond(runner, ans, {"released": released, "hold_off_ms": int(hold_off * 1000)})

    return handler


def add_lock_routes(app: web.Application, runner: Runner, admin: AdminCheck) -> None:
    """Register ``/v1/locks/{name}`` and ``/v1/locks/{name}/release`` (call before the
    catch-all 404 route). `admin` checks the bearer admin token."""
    app.router.add_route("*", "/v1/locks/{name}", lock_handler(runner))
    app.router.add_route("*", "/v1/locks/{name}/release", release_handler(runner, admin))
