"""`/v1/session/*` handlers (agent/session_endpoint.go, agent/consul/session_endpoint.go)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from sim.consul import durations, render
from sim.consul.catalog import SERF_CHECK_ID
from sim.consul.durations import DurationError, format_duration, parse_duration
from sim.consul.errors import ConsulError
from sim.consul.http_types import Outcome, Reply, ci_get, json_reply, text_reply
from sim.consul.sessions import (
    DEFAULT_LOCK_DELAY_NS,
    DELETE,
    LOCK_DELAY_MIN_THRESHOLD,
    RELEASE,
    SESSION_TTL_MAX_NS,
    SESSION_TTL_MIN_NS,
)

if TYPE_CHECKING:
    from sim.consul.api import Call, Handler


def _lock_delay(value: object) -> int:
    """FixupLockDelay: strings parse as Go durations, numbers as nanoseconds; < 1000 means seconds."""
    if isinstance(value, str):
        ns = parse_duration(value)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        ns = int(value)
    else:
        raise DurationError(f"'LockDelay' expected type 'time.Duration', got {type(value).__name__}")
    return ns * durations.SECOND if ns < LOCK_DELAY_MIN_THRESHOLD else ns


def _str_list(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ValueError("expected a list")
    out: list[str] = []
    for item in value:
        if isinstance(item, dict):
            item = ci_get(item, "ID")[1]
        out.append(str(item))
    return tuple(out)


def _session_checks(body: dict[str, Any]) -> tuple[str, ...]:
    """The node-level check IDs a created session is bound to.

    Consul's HTTP handler starts from ``Checks = NodeChecks = ["serfHealth"]``, decodes the
    body over those defaults (a present key replaces its field; ``null`` clears it), then
    applies ``fixupEmptySessionChecks`` (agent/session_endpoint.go):

    1. ``Checks`` empty -> ``NodeChecks`` emptied too (the pre-1.7 "no checks" idiom);
    2. else ``Checks == ["serfHealth"]`` (the default) -> ``Checks`` dropped, NodeChecks rules;
    3. else ``NodeChecks`` empty -> ``Checks`` dropped.

    The state store binds the session to the union of both lists. Hence ``Checks: ["x"]``
    alone still carries ``serfHealth`` through the default ``NodeChecks``.
    """
    checks: tuple[str, ...] = (SERF_CHECK_ID,)
    node_checks: tuple[str, ...] = (SERF_CHECK_ID,)
    present, value = ci_get(body, "Checks")
    if present:
        checks = _str_list(value)
    present, value = ci_get(body, "NodeChecks")
    if present:
        node_checks = _str_list(value)
    if not checks:
        node_checks = ()
    elif checks == (SERF_CHECK_ID,) or not node_checks:
        checks = ()
    merged: list[str] = []
    for check in (*checks, *node_checks):
        if check not in merged:
            merged.append(check)
    return tuple(merged)


def create(call: Call) -> Outcome:
    if call.req.method != "PUT":
        from sim.consul.api import method_not_allowed

        return method_not_allowed(call, ["PUT"])
    args: dict[str, Any] = {"node": call.dc.node, "lock_delay_ns": DEFAULT_LOCK_DELAY_NS,
                            "behavior": RELEASE, "ttl": "", "name": ""}
    node_checks: tuple[str, ...] = (SERF_CHECK_ID,)
    service_checks: tuple[str, ...] = ()
    if call.req.body:
        try:
            body = json.loads(call.req.body)
            if not isinstance(body, dict):
                raise ValueError("body is not a JSON object")
            for field, name in (("Name", "name"), ("Node", "node"), ("Behavior", "behavior"), ("TTL", "ttl")):
                present, value = ci_get(body, field)
                if present and value is not None:
                    args[name] = str(value)
            present, value = ci_get(body, "LockDelay")
            if present and value is not None:
                args["lock_delay_ns"] = _lock_delay(value)
            node_checks = _session_checks(body)
            present, value = ci_get(body, "ServiceChecks")
            if present:
                service_checks = _str_list(value)
        except (ValueError, DurationError) as err:
            return text_reply(400, f"Request decode failed: {err}")
    gate = call.leader_gate(read=False)
    if gate is not None:
        return gate
    if not args["node"]:
        raise ConsulError("Must provide Node")
    behavior = args["behavior"] or RELEASE
    if behavior not in (RELEASE, DELETE):
        raise ConsulError(f"Invalid Behavior setting '{behavior}'")
    ttl_ns = 0
    if args["ttl"]:
        try:
            ttl_ns = parse_duration(args["ttl"])
        except DurationError as err:
            raise ConsulError(f"Session TTL '{args['ttl']}' invalid: {err}") from None
        if ttl_ns != 0 and not SESSION_TTL_MIN_NS <= ttl_ns <= SESSION_TTL_MAX_NS:
            raise ConsulError(f"Invalid Session TTL '{ttl_ns}', must be between "
                              f"[{format_duration(SESSION_TTL_MIN_NS)}={format_duration(SESSION_TTL_MAX_NS)}]")
    sess = call.dc.session_create(
        call.now, name=args["name"], node=args["node"], lock_delay_ns=args["lock_delay_ns"],
        behavior=behavior, ttl=args["ttl"], ttl_ns=ttl_ns, node_checks=node_checks,
        service_checks=service_checks, show_checks=node_checks not in ((SERF_CHECK_ID,), ()),
    )
    return json_reply({"ID": sess.id})


def _put_only(call: Call) -> Reply | None:
    if call.req.method != "PUT":
        from sim.consul.api import method_not_allowed

        return method_not_allowed(call, ["PUT"])
    if call.rest == "":
        return text_reply(400, "Missing session")
    return None


def destroy(call: Call) -> Outcome:
    bad = _put_only(call)
    if bad is not None:
        return bad
    gate = call.leader_gate(read=False)
    if gate is not None:
        return gate
    call.dc.session_destroy(call.rest, call.now)
    return json_reply(True)


def renew(call: Call) -> Outcome:
    bad = _put_only(call)
    if bad is not None:
        return bad
    gate = call.leader_gate(read=False)
    if gate is not None:
        return gate
    sess = call.dc.session_renew(call.rest, call.now)
    if sess is None:
        return text_reply(404, f"Session id '{call.rest}' not found")
    return json_reply([render.session(sess)])


def _get_only(call: Call) -> Reply | None:
    if call.req.method != "GET":
        from sim.consul.api import method_not_allowed

        return method_not_allowed(call, ["GET"])
    return None


def _sessions_reply(call: Call, pick: Any) -> Outcome:
    """Session reads (GET only): a blocking query over the sessions table index."""
    bad = _get_only(call)
    if bad is not None:
        return bad
    dc = call.dc

    def compute() -> tuple[int, Any]:
        found = sorted(pick(), key=lambda s: s.id)
        return dc.sessions_index, lambda headers: json_reply([render.session(s) for s in found],
                                                              headers=headers)
    return call.blocking(compute)


def info(call: Call) -> Outcome:
    if call.rest == "" and call.req.method == "GET":
        return text_reply(400, "Missing session")
    return _sessions_reply(call, lambda: [s for s in [call.dc.sessions.get(call.rest)] if s is not None])


def list_all(call: Call) -> Outcome:
    return _sessions_reply(call, lambda: list(call.dc.sessions.values()))


def node(call: Call) -> Outcome:
    if call.rest == "" and call.req.method == "GET":
        return text_reply(400, "Missing node name")
    return _sessions_reply(call, lambda: call.dc.node_sessions(call.rest))


ROUTES: list[tuple[str, bool, Handler]] = [
    ("/v1/session/create", False, create),
    ("/v1/session/destroy/", True, destroy),
    ("/v1/session/renew/", True, renew),
    ("/v1/session/info/", True, info),
    ("/v1/session/list", False, list_all),
    ("/v1/session/node/", True, node),
]
