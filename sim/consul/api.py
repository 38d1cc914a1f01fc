"""Pure HTTP router of one emulated DC: `Router.handle(request, now, resume) -> Reply | Block | Forward`.

Nothing here touches sockets, asyncio or a clock, so the aiohttp shell (`server.py`) and a
discrete-event simulator drive the same code:

    outcome = router.handle(req, now)                 # first evaluation
    while isinstance(outcome, Block):                 # blocking query / leaderless hold
        wait until dc.version changes or outcome.wake_at
        outcome = router.handle(req, now, outcome.resume)
    if isinstance(outcome, Forward): deliver per Federation.route(...)

A Block may carry a `Watch` (what a blocking KV query depends on): a shell parking many
waiters can then re-evaluate only those whose key/prefix changed
(`Datacenter.take_kv_changes`, `Datacenter.leader_epoch`); waking on every `version`
change, as the simulator does, stays correct.

Order of checks mirrors Consul: `?dc=` forwarding first (the remote DC resolves the
token), then ACL, then the endpoint (leader gate, validation, state).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace

from sim.consul import durations
from sim.consul.errors import ACL_NOT_FOUND, NO_DC_PATH, NO_LEADER, PERMISSION_DENIED, ConsulError
from sim.consul.federation import Federation
from sim.consul.http_types import (
    JSON_CT,
    Block,
    Forward,
    Outcome,
    Reply,
    Request,
    Resume,
    Watch,
    ci_get,
    text_reply,
)
from sim.consul.model import Datacenter
from sim.consul.sessions import RandomSource

DEFAULT_WAIT = 300.0
MAX_WAIT = 600.0
JITTER_FRACTION = 16

Handler = Callable[["Call"], Outcome]

ACL_EXEMPT = ("/v1/status/", "/v1/catalog/datacenters", "/v1/coordinate/datacenters")
"""Endpoints Consul serves without any ACL permission."""
LOCAL_ONLY = ("/v1/agent/", "/v1/catalog/datacenters", "/v1/coordinate/")
"""Endpoints that ignore `?dc=` (answered by the local agent)."""


_WAITS: dict[str, float | None] = {}
_MAX_WAITS = 256


def _wait_seconds(text: str) -> float | None:
    """`?wait=` in seconds, None if it is not a Go duration (memoised: clients repeat it)."""
    if text in _WAITS:
        return _WAITS[text]
    try:
        seconds: float | None = durations.parse_duration(text) / durations.SECOND
    except durations.DurationError:
        seconds = None
    if len(_WAITS) < _MAX_WAITS:
        _WAITS[text] = seconds
    return seconds


@dataclass
class Call:
    """One evaluation of a request: the request, the time and the resume state."""

    router: Router
    req: Request
    now: float
    resume: Resume | None
    rest: str
    """The path after the handler's prefix (e.g. the key for /v1/kv/)."""
    watch: Watch | None = None
    """Set by a handler's `compute` (see `blocking`) to narrow what a Block depends on."""

    @property
    def dc(self) -> Datacenter:
        return self.router.dc

    def stale(self) -> bool:
        return self.req.has("stale")

    def consistency(self) -> str:
        if self.req.has("stale"):
            return "stale"
        return "consistent" if self.req.has("consistent") else "leader"

    def meta_headers(self, index: int) -> dict[str, str]:
        dc = self.dc
        return {
            "Content-Type": JSON_CT,
            "X-Consul-Index": str(max(index, 1)),
            "X-Consul-KnownLeader": "true" if dc.leader else "false",
            "X-Consul-LastContact": str(dc.last_contact_ms(self.now)),
            "X-Consul-Effective-Consistency": self.consistency(),
            "X-Consul-Default-ACL-Policy": self.router.acl_policy,
        }

    def leader_gate(self, read: bool) -> Outcome | None:
        """None if the request may proceed; else a hold Block or 500 `No cluster leader`."""
        if self.dc.leader or (read and self.stale()):
            return None
        hold = self.dc.config.rpc_hold_timeout
        if hold > 0:
            until = self.resume.hold_until if self.resume and self.resume.hold_until else self.now + hold
            if self.now < until:
                return Block(until, Resume(hold_until=until))
        return text_reply(500, NO_LEADER)

    def blocking(self, compute: Callable[[], tuple[int, Callable[[dict[str, str]], Reply]]]) -> Outcome:
        """Blocking-query protocol. `compute` returns (index, build) where build(headers) renders;
        it may set `self.watch` (what the result depends on), which a returned Block carries."""
        wait_s = self.req.param("wait")
        index_s = self.req.param("index")
        wait = DEFAULT_WAIT
        if wait_s:
            parsed = _wait_seconds(wait_s)
            if parsed is None:
                return text_reply(400, "Invalid wait time")
            wait = parsed
        min_index = 0
        if index_s:
            try:
                min_index = durations.parse_uint64(index_s)
            except durations.NumError:
                return text_reply(400, "Invalid index")
        if self.req.has("stale") and self.req.has("consistent"):
            return text_reply(400, "Cannot specify ?stale with ?consistent, conflicting semantics.")
        gate = self.leader_gate(read=True)
        if gate is not None:
            return gate
        index, build = compute()
        index = max(index, 1)
        if min_index > 0 and index <= min_index:
            deadline = self.resume.deadline if self.resume and self.resume.deadline is not None else None
            if deadline is None:
                if wait <= 0 or wait > MAX_WAIT:
                    wait = MAX_WAIT if wait > MAX_WAIT else DEFAULT_WAIT
                deadline = self.now + wait + self.router.rng.random() * wait / JITTER_FRACTION
            if self.now < deadline:
                return Block(deadline, Resume(deadline=deadline), self.watch)
        return build(self.meta_headers(index))


class Router:
    """Routes Consul HTTP API requests for one DC. Holds no per-request state."""

    def __init__(self, dc: Datacenter, federation: Federation, rng: RandomSource,
                 acl_master_token: str | None = None) -> None:
        from sim.consul import api_agent, api_kv, api_session

        self.dc = dc
        self.federation = federation
        self.rng = rng
        self.acl_master_token = acl_master_token
        self.acl_policy = "deny" if acl_master_token else "allow"
        self.routes: list[tuple[str, bool, Handler]] = [
            *api_kv.ROUTES, *api_session.ROUTES, *api_agent.ROUTES,
        ]
        """(path prefix or exact path, is_prefix, handler), most specific first."""
        self._routed: dict[str, tuple[Handler, str] | None] = {}

    def _token(self, req: Request) -> str:
        """Consul's parseTokenInternal: the first non-empty of `?token=`, `X-Consul-Token`,
        `Authorization: Bearer <token>` (scheme case-insensitive, value trimmed)."""
        token = req.param("token") or ""
        if not token:
            token = req.headers.get("x-consul-token", "")
        if not token:
            auth = req.headers.get("authorization", "")
            if auth.lower().startswith("bearer "):
                token = auth[7:].strip()
        return token

    def _acl(self, req: Request) -> Reply | None:
        if self.acl_master_token is None or req.path.startswith(ACL_EXEMPT):
            return None
        token = self._token(req)
        if token == self.acl_master_token:
            return None
        return text_reply(403, PERMISSION_DENIED if token == "" else ACL_NOT_FOUND)

    def _localize(self, req: Request) -> Request:
        """Fills what Consul's HTTP layer fills from the LOCAL agent before forwarding:
        a session's Node defaults to this agent's node, so `?dc=other` without a Node
        fails there with `Missing node registration`."""
        if req.path != "/v1/session/create" or req.method != "PUT":
            return req
        try:
            body = json.loads(req.body) if req.body else {}
        except ValueError:
            return req
        if not isinstance(body, dict) or ci_get(body, "Node")[0]:
            return req
        body["Node"] = self.dc.node
        return replace(req, body=json.dumps(body).encode())

    def handle(self, req: Request, now: float, resume: Resume | None = None) -> Outcome:
        """Evaluates `req` at time `now`. Pure with respect to I/O; mutates the model for writes."""
        if not req.path.startswith("/v1/"):
            return text_reply(404, "Invalid URL path: if attempting to use the HTTP API, "
                                   "ensure the path starts with '/v1/'\n")
        dc_param = req.param("dc")
        if dc_param and dc_param != self.dc.name and not req.path.startswith(LOCAL_ONLY):
            if not self.federation.knows(dc_param):
                return text_reply(500, NO_DC_PATH)
            return Forward(dc_param, self._localize(req))
        denied = self._acl(req)
        if denied is not None:
            return denied
        route = self._route(req.path)
        if route is None:
            return text_reply(404, "Invalid URL path: not a recognized HTTP API endpoint\n")
        handler, rest = route
        try:
            return handler(Call(self, req, now, resume, rest))
        except ConsulError as err:
            return text_reply(err.status, err.message)

    def _route(self, path: str) -> tuple[Handler, str] | None:
        """The first matching route's handler and the path after its prefix (memoised per
        path: the routes never change, clients repeat paths)."""
        if path in self._routed:
            return self._routed[path]
        found: tuple[Handler, str] | None = None
        for prefix, is_prefix, handler in self.routes:
            if (is_prefix and path.startswith(prefix)) or path == prefix:
                found = (handler, path[len(prefix):] if is_prefix else "")
                break
        if len(self._routed) >= 4096:
            self._routed.clear()
        self._routed[path] = found
        return found


def method_not_allowed(call: Call, allowed: list[str]) -> Reply:
    return text_reply(405, f"method {call.req.method} not allowed",
                      {"Allow": ",".join(["OPTIONS", *allowed])})
