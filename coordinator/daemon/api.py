"""The coordinator's HTTP API (aiohttp.web), described by coordinator/openapi.yaml.

Routes: GET /v1/may-write, GET /v1/status, GET /metrics, GET /v1/openapi.yaml and the admin
POSTs /v1/caught-up, /v1/fence, /v1/unfence (their DC-wide key: coordinator.daemon.admin_fence);
the global locks' GET /v1/locks/<name> and admin POST /v1/locks/<name>/release live in
coordinator.daemon.locks_api. Every error body is JSON ``{"error": ...}``: 400 bad
blocking parameters, 401 wrong admin token, 403 admin API disabled, 404 unknown path, 405
wrong method (with ``Allow``), 503 when `/v1/unfence` cannot delete the DC-wide key.

Invariants:

* the may-write answer is computed from ``core.may_write(now)`` at the moment the response
  is built (after any long-poll wait), so ``valid_for_ms`` counts from send time and is
  rounded DOWN to whole milliseconds; only ``GET /v1/may-write`` hands a "yes" out (the
  core records its end, which a graceful stop waits for): ``/v1/status``, ``/metrics``
  and the admin responses show the answer through the status snapshot, which records
  nothing;
* ``allowed: true`` comes only with HTTP 200, every "no" with HTTP 503;
* the admin token is compared with ``hmac.compare_digest`` and is never logged or echoed.

The may-write handler is the hot path (target 20k req/s): no per-request logging, and the
JSON body is assembled from bytes cached per answer, with only ``valid_for_ms`` formatted
per request.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from coordinator.core.protocol import AdminAction, MayWriteAnswer
from coordinator.daemon.admin_fence import set_dc_fence
from coordinator.daemon.blocking import BlockingParamError, parse_blocking
from coordinator.daemon.jsonable import to_jsonable
from coordinator.daemon.locks_api import add_lock_routes
from coordinator.daemon.metrics import Metrics
from coordinator.daemon.runner import Runner

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ADMIN_DISABLED = "admin API disabled: start with --admin-token-file"
INDEX_HEADER = "X-Coordinator-Index"
_JSON = "application/json"


def _dumps(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=_dumps({"error": message}), content_type=_JSON, headers=headers)


class _AnswerEncoder:
    """Encodes MayWriteAnswers; caches everything but ``valid_for_ms`` per distinct answer.

    `headers` is the cached header block of the last encoded answer (Content-Type and
    ``X-Coordinator-Index``); aiohttp copies it into each response, so it is never mutated.
    """

    def __init__(self) -> None:
        self._key: tuple[Any, ...] | None = None
        self._bytes = b""
        self.headers: CIMultiDict[str] = CIMultiDict()

    def encode(self, ans: MayWriteAnswer) -> bytes:
        key = (ans.allowed, ans.index, ans.dc, ans.reason, ans.leader, ans.token, ans.quorum)
        if key != self._key:
            if ans.allowed:
                head = {
                    "allowed": True,
                    "dc": ans.dc,
                    "leader": ans.leader,
                    "token": ans.token,
                    "quorum": list(ans.quorum),
                    "index": ans.index,
                }
                self._bytes = _dumps(head)[:-1] + b',"valid_for_ms":'
            else:
                reason = ans.reason.value if ans.reason is not None else None
                no = {
                    "allowed": False,
                    "dc": ans.dc,
                    "reason": reason,
                    "leader": ans.leader,
                    "index": ans.index,
                }
                self._bytes = _dumps(no)
            self.headers = CIMultiDict({"Content-Type": _JSON, INDEX_HEADER: str(ans.index)})
            self._key = key
        if ans.allowed:
            return self._bytes + b"%d}" % max(int(ans.valid_for * 1000), 0)
        return self._bytes


class Api:
    """Holds the handlers' state; `app()` builds the aiohttp Application."""

    def __init__(self, runner: Runner, metrics: Metrics, *, admin_token: str | None = None) -> None:
        self.runner = runner
        self.metrics = metrics
        self._admin_token = admin_token.encode() if admin_token is not None else None
        self._encoder = _AnswerEncoder()
        self._openapi = (resources.files("coordinator") / "openapi.yaml").read_bytes()

    def app(self) -> web.Application:
        app = web.Application(handler_args={"access_log": None})
        routes: list[tuple[str, str, Handler]] = [
            ("/v1/may-write", "GET", self.may_write),
            ("/v1/status", "GET", self.status),
            ("/metrics", "GET", self.metrics_handler),
            ("/v1/openapi.yaml", "GET", self.openapi),
            ("/v1/caught-up", "POST", self._admin_handler(AdminAction.CAUGHT_UP)),
            ("/v1/fence", "POST", self._fence_handler(True)),
            ("/v1/unfence", "POST", self._fence_handler(False)),
        ]
        for path, method, handler in routes:
            # The method's own route is matched first (no wrapper on the hot path); "*"
            # only catches the other methods, with a JSON 405.
            resource = app.router.add_resource(path)
            allowed = (method, "HEAD") if method == "GET" else (method,)
            for m in allowed:
                resource.add_route(m, handler)
            resource.add_route("*", _method_not_allowed(allowed))
        add_lock_routes(app, self.runner, self._check_admin)
        app.router.add_route("*", "/{tail:.*}", _not_found)
        return app

    # -- handlers -----------------------------------------------------------------------

    async def may_write(self, request: web.Request) -> web.Response:
        if request.query_string:
            try:
                blocking = parse_blocking(request.query)
            except BlockingParamError as exc:
                return error_response(400, str(exc))
            if blocking is not None:
                await self.runner.wait_for_change(blocking.index, blocking.wait)
        ans = self.runner.may_write()
        self.metrics.count_may_write(ans.allowed)
        encoder = self._encoder
        body = encoder.encode(ans)
        return web.Response(status=200 if ans.allowed else 503, body=body, headers=encoder.headers)

    async def status(self, request: web.Request) -> web.Response:
        snapshot = to_jsonable(self.runner.status())
        index = self.runner.core.answer_index
        body = json.dumps(snapshot, indent=2).encode() + b"\n"
        return web.Response(body=body, content_type=_JSON, headers={INDEX_HEADER: str(index)})

    async def metrics_handler(self, request: web.Request) -> web.Response:
        body, content_type = self.metrics.render()
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def openapi(self, request: web.Request) -> web.Response:
        return web.Response(body=self._openapi, headers={"Content-Type": "application/yaml"})

    def _admin_handler(self, action: AdminAction) -> Handler:
        async def handler(request: web.Request) -> web.Response:
            denied = self._check_admin(request)
            if denied is not None:
                return denied
            self.runner.admin(action)
            return self._admin_answer(action)

        return handler

    def _admin_answer(self, action: AdminAction, **extra: object) -> web.Response:
        st = self.runner.status()  # shows the answer without handing a "yes" out
        index = st.answer_index
        body = {"action": action.value, "allowed": st.allowed, "reason": st.reason, "index": index, **extra}
        return web.Response(body=_dumps(body), content_type=_JSON, headers={INDEX_HEADER: str(index)})

    def _fence_handler(self, fence: bool) -> Handler:
        """fence: this replica at once, then the DC-wide key; unfence: the key first
        (admin_fence.py)."""

        async def handler(request: web.Request) -> web.Response:
            denied = self._check_admin(request)
            if denied is not None:
                return denied
            if fence:
                self.runner.admin(AdminAction.FENCE)
                problem = await set_dc_fence(self.runner, True)
                extra: dict[str, object] = {"dc_wide": problem is None}
                if problem is not None:
                    extra["error"] = f"fenced this replica only; DC-wide fence key not written: {problem}"
                return self._admin_answer(AdminAction.FENCE, **extra)
            problem = await set_dc_fence(self.runner, False)
            if problem is not None:
                return error_response(503, f"still fenced: cannot delete the DC-wide fence key: {problem}")
            self.runner.admin(AdminAction.UNFENCE)
            return self._admin_answer(AdminAction.UNFENCE, dc_wide=True)

        return handler

    def _check_admin(self, request: web.Request) -> web.Response | None:
        if self._admin_token is None:
            return error_response(403, ADMIN_DISABLED)
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        ok = scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), self._admin_token)
        if not ok:
            return error_response(
                401,
                "missing or wrong admin token",
                headers={"WWW-Authenticate": 'Bearer realm="coordinator"'},
            )
        return None


def _method_not_allowed(allowed: tuple[str, ...]) -> Handler:
    allow_header = ", ".join(sorted(allowed))

    async def refuse(request: web.Request) -> web.StreamResponse:
        return error_response(
            405, f"method {request.method} not allowed on {request.path}", headers={"Allow": allow_header}
        )

    return refuse


async def _not_found(request: web.Request) -> web.Response:
    return error_response(404, f"no such endpoint: {request.path}")
