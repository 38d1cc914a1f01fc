"""Agent, catalog, health, coordinate and status endpoints (minimal but Consul-shaped)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from sim.consul import catalog as cat
from sim.consul import render
from sim.consul.catalog import Check, Service
from sim.consul.durations import DurationError, parse_duration
from sim.consul.federation import SERF_WAN_PORT
from sim.consul.http_types import Outcome, Reply, ci_get, json_reply, text_reply

if TYPE_CHECKING:
    from sim.consul.api import Call, Handler

VERSION = "1.17.0"


def _put_only(handler: Handler) -> Handler:
    """agent/http_register.go registers agent writes for PUT only: anything else is 405."""
    def wrapped(call: Call) -> Outcome:
        if call.req.method != "PUT":
            from sim.consul.api import method_not_allowed

            return method_not_allowed(call, ["PUT"])
        return handler(call)
    return wrapped


def _unknown_check(check_id: str) -> Reply:
    """vetCheckUpdateWithAuthorizer (Consul >= 1.11): updates and deregistrations of a check
    the agent does not know are 404 before anything else happens."""
    return text_reply(404, f'Unknown check ID "{check_id}". Ensure that the check ID is passed, '
                           "not the check name.")


def _body(call: Call) -> dict[str, Any] | Reply:
    try:
        body = json.loads(call.req.body or b"{}")
    except ValueError as err:
        return text_reply(400, f"Request decode failed: {err}")
    if not isinstance(body, dict):
        return text_reply(400, "Request decode failed: body is not a JSON object")
    return body


def _field(body: dict[str, Any], name: str, default: Any = "") -> Any:
    present, value = ci_get(body, name)
    return value if present and value is not None else default


def _member(call: Call, dc: str, wan: bool) -> dict[str, Any]:
    fed = call.router.federation
    node = call.dc.node if dc == call.dc.name else f"{dc}-server-1"
    return {
        "Name": f"{node}.{dc}" if wan else node,
        "Addr": call.dc.config.address,
        "Port": SERF_WAN_PORT if wan else 8301,
        "Tags": {"role": "consul", "dc": dc, "port": "8300", "build": VERSION, "vsn": "2"},
        "Status": fed.member_status(call.dc.name, dc, call.now),
        "ProtocolMin": 1, "ProtocolMax": 5, "ProtocolCur": 2,
        "DelegateMin": 2, "DelegateMax": 5, "DelegateCur": 4,
    }


def agent_self(call: Call) -> Outcome:
    dc = call.dc
    node = dc.catalog.nodes[dc.node]
    return json_reply({
        "Config": {"Datacenter": dc.name, "PrimaryDatacenter": sorted(call.router.federation.datacenters)[0],
                   "NodeName": dc.node, "NodeID": node.node_id, "Revision": "emulator",
                   "Server": True, "Version": VERSION},
        "Coord": call.router.federation.coordinate(dc.name),
        "Member": _member(call, dc.name, wan=False),
        "Stats": {}, "Meta": {"consul-network-segment": ""},
    })


def members(call: Call) -> Outcome:
    if call.req.param("wan") not in (None, "", "0", "false"):
        dcs = call.router.federation.by_distance(call.dc.name)
        return json_reply([_member(call, d, wan=True) for d in sorted(dcs)])
    return json_reply([_member(call, call.dc.name, wan=False)])


def agent_checks(call: Call) -> Outcome:
    checks = sorted(call.dc.agent.checks.items())
    return json_reply({cid: render.check(c, with_indexes=False) for cid, c in checks})


def agent_services(call: Call) -> Outcome:
    return json_reply({s.service_id: {**render.service(s), "Datacenter": call.dc.name}
                       for s in call.dc.agent.services.values()})


def _check_from(body: dict[str, Any], service: Service | None = None) -> Check | Reply:
    name = str(_field(body, "Name"))
    if not name:
        return text_reply(400, "Missing check name")
    cid = str(_field(body, "CheckID") or _field(body, "ID") or name)
    status = str(_field(body, "Status") or cat.CRITICAL)
    if status not in cat.STATUSES:
        return text_reply(400, "Bad check status")
    try:
        ttl_ns = parse_duration(str(_field(body, "TTL"))) if _field(body, "TTL") else 0
        dcsa = _field(body, "DeregisterCriticalServiceAfter")
        dcsa_ns = parse_duration(str(dcsa)) if dcsa else 0
    except DurationError as err:
        return text_reply(400, f"Request decode failed: {err}")
    kind = "ttl" if ttl_ns else next((k.lower() for k in ("HTTP", "TCP", "GRPC", "Args")
                                      if _field(body, k)), "")
    if not kind:
        return text_reply(400, "Must provide TTL or Script/DockerContainerID/HTTP/TCP/GRPC/H2PING/"
                               "UDP/OSService/AliasNode/AliasService and Interval!")
    sid = service.service_id if service else str(_field(body, "ServiceID"))
    return Check(node="", check_id=cid, name=name, status=status, notes=str(_field(body, "Notes")),
                 output=str(_field(body, "Output")), service_id=sid,
                 service_name=service.name if service else "", service_tags=service.tags if service else (),
                 type="script" if kind == "args" else kind, ttl_ns=ttl_ns,
                 interval=str(_field(body, "Interval")), timeout=str(_field(body, "Timeout")),
                 dcsa_ns=dcsa_ns)


def check_register(call: Call) -> Outcome:
    body = _body(call)
    if isinstance(body, Reply):
        return body
    check = _check_from(body)
    if isinstance(check, Reply):
        return check
    if check.service_id:
        svc = call.dc.agent.services.get(check.service_id)
        if svc is None:
            return text_reply(400, f'ServiceID "{check.service_id}" does not exist')
        check = replace(check, service_name=svc.name, service_tags=svc.tags)
    call.dc.agent_check_register(check, call.now)
    return Reply(200, {}, b"")


def check_deregister(call: Call) -> Outcome:
    if call.rest not in call.dc.agent.checks:
        return _unknown_check(call.rest)
    call.dc.agent_check_deregister(call.rest, call.now)
    return Reply(200, {}, b"")


def _check_status(status: str) -> Any:
    def handler(call: Call) -> Outcome:
        if call.rest not in call.dc.agent.checks:
            return _unknown_check(call.rest)
        call.dc.agent_check_update(call.rest, status, call.req.param("note") or "", call.now)
        return Reply(200, {}, b"")
    return handler


def check_update(call: Call) -> Outcome:
    body = _body(call)
    if isinstance(body, Reply):
        return body
    status = str(_field(body, "Status"))
    if status not in cat.STATUSES:
        return text_reply(400, f"Invalid check status: '{status}'")
    if call.rest not in call.dc.agent.checks:
        return _unknown_check(call.rest)
    call.dc.agent_check_update(call.rest, status, str(_field(body, "Output")), call.now)
    return Reply(200, {}, b"")


def _go_kind(value: Any) -> str:
    """How Go's encoding/json names a JSON value's kind in an unmarshal error."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    kinds: dict[type, str] = {str: "string", list: "array", dict: "object"}
    return kinds.get(type(value), "value")


def _service_decode_error(body: dict[str, Any]) -> Reply | None:
    """Consul decodes the body into typed Go structs: a field of the wrong JSON type is a
    400 `Request decode failed: ...`, never a silently coerced value."""
    port, tags, meta = _field(body, "Port", 0), _field(body, "Tags", []), _field(body, "Meta", {})
    checks, check = _field(body, "Checks", []), _field(body, "Check", None)
    rules: list[tuple[str, Any, str, bool]] = [
        ("Port", port, "int", isinstance(port, int) and not isinstance(port, bool)),
        ("Tags", tags, "[]string", isinstance(tags, list) and all(isinstance(t, str) for t in tags)),
        ("Meta", meta, "map[string]string",
         isinstance(meta, dict) and all(isinstance(v, str) for v in meta.values())),
        ("Checks", checks, "structs.CheckTypes",
         isinstance(checks, list) and all(isinstance(c, dict) for c in checks)),
        ("Check", check, "structs.CheckType", check is None or isinstance(check, dict)),
    ]
    for name, value, go_type, ok in rules:
        if not ok:
            return text_reply(400, f"Request decode failed: json: cannot unmarshal {_go_kind(value)} "
                                   f"into Go struct field ServiceDefinition.{name} of type {go_type}")
    return None


def service_register(call: Call) -> Outcome:
    body = _body(call)
    if isinstance(body, Reply):
        return body
    bad = _service_decode_error(body)
    if bad is not None:
        return bad
    name = str(_field(body, "Name"))
    if not name:
        return text_reply(400, "Missing service name")
    svc = Service(node="", service_id=str(_field(body, "ID") or name), name=name,
                  tags=tuple(_field(body, "Tags", [])), address=str(_field(body, "Address")),
                  port=int(_field(body, "Port", 0)),
                  meta=tuple(sorted(dict(_field(body, "Meta", {})).items())))
    checks: list[Check] = []
    raw_checks = list(_field(body, "Checks", []))
    if _field(body, "Check", None):
        raw_checks.insert(0, _field(body, "Check"))
    for i, raw in enumerate(raw_checks):
        raw = dict(raw)
        raw.setdefault("Name", f"Service '{name}' check")
        suffix = f":{i + 1}" if len(raw_checks) > 1 else ""
        raw.setdefault("CheckID", f"service:{svc.service_id}{suffix}")
        check = _check_from(raw, svc)
        if isinstance(check, Reply):
            return check
        checks.append(check)
    call.dc.agent_service_register(svc, checks, call.now)
    return Reply(200, {}, b"")


def service_deregister(call: Call) -> Outcome:
    if call.rest not in call.dc.agent.services:
        return text_reply(404, f'Unknown service ID "{call.rest}". Ensure that the service ID is '
                               "passed, not the service name.")
    call.dc.agent_service_deregister(call.rest, call.now)
    return Reply(200, {}, b"")


def _catalog_read(call: Call, make: Any) -> Outcome:
    dc = call.dc
    return call.blocking(lambda: (dc.catalog.table_index,
                                  lambda headers: json_reply(make(), headers=headers)))


def catalog_datacenters(call: Call) -> Outcome:
    return json_reply(call.router.federation.by_distance(call.dc.name))


def catalog_nodes(call: Call) -> Outcome:
    return _catalog_read(call, lambda: [render.node(n) for _, n in sorted(call.dc.catalog.nodes.items())])


def catalog_services(call: Call) -> Outcome:
    def make() -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for s in call.dc.catalog.services.values():
            tags = out.setdefault(s.name, [])
            tags.extend(t for t in s.tags if t not in tags)
        return dict(sorted(out.items()))
    return _catalog_read(call, make)


def catalog_service(call: Call) -> Outcome:
    nodes = call.dc.catalog.nodes
    return _catalog_read(call, lambda: [render.catalog_service(nodes[s.node], s)
                                        for s in call.dc.catalog.service_instances(call.rest)])


def health_node(call: Call) -> Outcome:
    return _catalog_read(call, lambda: [render.check(c) for c in call.dc.catalog.node_checks(call.rest)])


def health_checks(call: Call) -> Outcome:
    return _catalog_read(call, lambda: [render.check(c) for c in call.dc.catalog.service_checks(call.rest)])


def health_state(call: Call) -> Outcome:
    state = call.rest
    if state not in (*cat.STATUSES, "any"):
        return text_reply(400, "Invalid state")
    return _catalog_read(call, lambda: [render.check(c) for c in sorted(
        call.dc.catalog.checks.values(), key=lambda c: (c.node, c.check_id)) if state in ("any", c.status)])


def health_service(call: Call) -> Outcome:
    catalog = call.dc.catalog
    passing = call.req.has("passing")

    def make() -> list[dict[str, Any]]:
        out = []
        for s in catalog.service_instances(call.rest):
            checks = [c for c in catalog.node_checks(s.node) if c.service_id in ("", s.service_id)]
            if passing and any(c.status != cat.PASSING for c in checks):
                continue
            out.append({"Node": render.node(catalog.nodes[s.node]), "Service": render.service(s),
                        "Checks": [render.check(c) for c in checks]})
        return out
    return _catalog_read(call, make)


def coordinate_datacenters(call: Call) -> Outcome:
    fed = call.router.federation
    return json_reply([{"Datacenter": d, "AreaID": "wan",
                        "Coordinates": [{"Node": f"{d}-server-1" if d != call.dc.name else call.dc.node,
                                         "Coord": fed.coordinate(d)}]}
                       for d in fed.by_distance(call.dc.name)])


def status_leader(call: Call) -> Outcome:
    fed = call.router.federation
    return json_reply(fed.rpc_address(call.dc.name, call.dc.config.address) if call.dc.leader else "")


def status_peers(call: Call) -> Outcome:
    return json_reply([call.router.federation.rpc_address(call.dc.name, call.dc.config.address)])


ROUTES: list[tuple[str, bool, Handler]] = [
    ("/v1/agent/self", False, agent_self),
    ("/v1/agent/members", False, members),
    ("/v1/agent/checks", False, agent_checks),
    ("/v1/agent/services", False, agent_services),
    ("/v1/agent/check/register", False, _put_only(check_register)),
    ("/v1/agent/check/deregister/", True, _put_only(check_deregister)),
    ("/v1/agent/check/pass/", True, _put_only(_check_status(cat.PASSING))),
    ("/v1/agent/check/warn/", True, _put_only(_check_status(cat.WARNING))),
    ("/v1/agent/check/fail/", True, _put_only(_check_status(cat.CRITICAL))),
    ("/v1/agent/check/update/", True, _put_only(check_update)),
    ("/v1/agent/service/register", False, _put_only(service_register)),
    ("/v1/agent/service/deregister/", True, _put_only(service_deregister)),
    ("/v1/catalog/datacenters", False, catalog_datacenters),
    ("/v1/catalog/nodes", False, catalog_nodes),
    ("/v1/catalog/services", False, catalog_services),
    ("/v1/catalog/service/", True, catalog_service),
    ("/v1/health/node/", True, health_node),
    ("/v1/health/checks/", True, health_checks),
    ("/v1/health/state/", True, health_state),
    ("/v1/health/service/", True, health_service),
    ("/v1/coordinate/datacenters", False, coordinate_datacenters),
    ("/v1/status/leader", False, status_leader),
    ("/v1/status/peers", False, status_peers),
]
