"""Pure parsers: each takes a `Response` and returns a typed value or raises a `ConsulError`.

Contract: a parser never raises anything but `ConsulError` subclasses, whatever the status,
headers or body (property-tested). HTTP statuses and Consul's error texts are translated
to the exception tree of coordinator.consul.errors by `shape.raise_for_status` and nowhere
else. A body that is not the documented shape is `MalformedResponse`.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from coordinator.consul import errors as e
from coordinator.consul.models import (
    AgentSelf,
    Coord,
    DcCoords,
    KvEntry,
    KvKeys,
    KvRead,
    Member,
    NodeCoord,
    QueryMeta,
    SessionInfo,
    TxnResult,
)
from coordinator.consul.shape import (
    UINT,
    as_dict,
    as_list,
    as_str_list,
    body_text,
    bool_body,
    get_float,
    get_str,
    get_uint,
    header,
    load_json,
    malformed,
    raise_for_status,
    shape_guard,
)
from coordinator.consul.wire import Response

# --- Query metadata and the blocking index ------------------------------------------------


@shape_guard
def parse_query_meta(resp: Response) -> QueryMeta:
    """Read X-Consul-Index (absent -> 0), X-Consul-KnownLeader, X-Consul-LastContact and
    X-Consul-Effective-Consistency. Unparsable values raise MalformedResponse."""
    raw_index = header(resp, "x-consul-index")
    index = 0
    if raw_index is not None:
        if not UINT.fullmatch(raw_index.strip()):
            raise malformed(resp, "X-Consul-Index is not an unsigned integer")
        index = int(raw_index.strip())
    raw_leader = header(resp, "x-consul-knownleader")
    known_leader: bool | None = None
    if raw_leader is not None:
        flag = raw_leader.strip().lower()
        if flag not in ("true", "false"):
            raise malformed(resp, "X-Consul-KnownLeader is not true/false")
        known_leader = flag == "true"
    raw_contact = header(resp, "x-consul-lastcontact")
    last_contact: int | None = None
    if raw_contact is not None:
        if not UINT.fullmatch(raw_contact.strip()):
            raise malformed(resp, "X-Consul-LastContact is not an unsigned integer")
        last_contact = int(raw_contact.strip())
    return QueryMeta(index, known_leader, last_contact, header(resp, "x-consul-effective-consistency"))


def next_blocking_index(previous: int, returned: int) -> int:
    """The `index` to send on the next blocking query after one returned `returned`.

    Consul's rules (api-docs/features/blocking, "Implementation details"):
    - the index went backwards (returned < previous): reset to 0, which restarts the loop
      with one non-blocking read;
    - otherwise never go below 1, because index 0 never blocks and a buggy 0 would turn
      the loop into a busy loop; 1 is always safe to wait on.
    So two non-blocking reads in a row cannot happen: after a reset `previous` is 0.
    """
    if returned < previous:
        return 0
    return max(returned, 1)


# --- KV -----------------------------------------------------------------------------------


def _kv_entry(obj: Any, resp: Response) -> KvEntry:
    d = as_dict(obj, "KV entry", resp)
    key = d.get("Key")
    if not isinstance(key, str):
        raise malformed(resp, "KV entry without a string Key")
    raw = d.get("Value")
    value: bytes | None = None
    if raw is not None:
        if not isinstance(raw, str):
            raise malformed(resp, "KV Value is not a base64 string")
        try:
            value = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise malformed(resp, "KV Value is not valid base64") from exc
    session = get_str(d, "Session", resp) or None
    return KvEntry(
        key=key,
        value=value,
        flags=get_uint(d, "Flags", resp),
        create_index=get_uint(d, "CreateIndex", resp),
        modify_index=get_uint(d, "ModifyIndex", resp),
        lock_index=get_uint(d, "LockIndex", resp),
        session=session,
    )


@shape_guard
def parse_kv_get(resp: Response) -> KvRead:
    """200 -> the entries; 404 (missing key / empty prefix) -> no entries. Both carry meta."""
    if resp.status == 404:
        return KvRead((), parse_query_meta(resp))
    raise_for_status(resp)
    body = resp.body
    memo = type(body) is bytes
    entries = _KV_BODIES.get(body) if memo else None
    if entries is None:
        items = as_list(load_json(resp), "KV read body", resp)
        entries = tuple(_kv_entry(x, resp) for x in items)
        if memo:
            if len(_KV_BODIES) >= _KV_BODIES_MAX:
                _KV_BODIES.clear()
            _KV_BODIES[body] = entries
    return KvRead(entries, parse_query_meta(resp))


_KV_BODIES: dict[bytes, tuple[KvEntry, ...]] = {}
"""Successfully parsed 2xx KV read bodies -> their (immutable) entries: peers read the same
row version, and the parse is pure in the body. Failures are never memoised."""
_KV_BODIES_MAX = 1024


@shape_guard
def parse_kv_keys(resp: Response) -> KvKeys:
    """200 -> the key names; 404 -> none. Both carry meta."""
    if resp.status == 404:
        return KvKeys((), parse_query_meta(resp))
    raise_for_status(resp)
    return KvKeys(as_str_list(load_json(resp), "keys body", resp), parse_query_meta(resp))


@shape_guard
def parse_kv_put(resp: Response) -> bool:
    """True = written / acquired / released; False = CAS mismatch, lock held, lock-delay."""
    return bool_body(resp)


@shape_guard
def parse_kv_delete(resp: Response) -> bool:
    """True = deleted (or already absent); False = CAS mismatch."""
    return bool_body(resp)


# --- Sessions -----------------------------------------------------------------------------


def _session(obj: Any, resp: Response) -> SessionInfo:
    d = as_dict(obj, "session", resp)
    sid = d.get("ID")
    if not isinstance(sid, str) or not sid:
        raise malformed(resp, "session without an ID")
    raw_delay = d.get("LockDelay", 0)
    if isinstance(raw_delay, bool) or not isinstance(raw_delay, int | float | None):
        raise malformed(resp, "LockDelay is not a number of nanoseconds")
    checks = as_str_list(d.get("NodeChecks"), "NodeChecks", resp)
    for c in as_str_list(d.get("Checks"), "Checks", resp):
        if c not in checks:
            checks += (c,)
    service_checks: list[str] = []
    for item in as_list(d.get("ServiceChecks"), "ServiceChecks", resp, null_ok=True):
        service_checks.append(get_str(as_dict(item, "ServiceCheck", resp), "ID", resp))
    return SessionInfo(
        id=sid,
        name=get_str(d, "Name", resp),
        node=get_str(d, "Node", resp),
        ttl=get_str(d, "TTL", resp),
        lock_delay=(raw_delay or 0) / 1e9,
        behavior=get_str(d, "Behavior", resp, "release"),
        checks=checks,
        service_checks=tuple(service_checks),
        create_index=get_uint(d, "CreateIndex", resp),
        modify_index=get_uint(d, "ModifyIndex", resp),
    )


@shape_guard
def parse_session_create(resp: Response) -> str:
    """The new session's ID."""
    raise_for_status(resp)
    sid = as_dict(load_json(resp), "session create body", resp).get("ID")
    if not isinstance(sid, str) or not sid:
        raise malformed(resp, "no session ID")
    return sid


@shape_guard
def parse_session_renew(resp: Response) -> SessionInfo:
    """The renewed session (its TTL may be higher than asked).

    404, or an empty list, -> SessionNotFound (unknown, destroyed or expired: the lock is lost).
    """
    if resp.status == 404:
        text = body_text(resp)
        raise e.SessionNotFound(f"Consul: session not found: {text[:120]}", status=404, detail=text)
    raise_for_status(resp)
    items = as_list(load_json(resp), "session renew body", resp, null_ok=True)
    if not items:
        raise e.SessionNotFound("Consul: session not found (empty renew answer)", status=resp.status)
    return _session(items[0], resp)


@shape_guard
def parse_session_destroy(resp: Response) -> bool:
    """Consul answers true (destroy is idempotent)."""
    return bool_body(resp)


@shape_guard
def parse_session_info(resp: Response) -> SessionInfo | None:
    """The session, or None when Consul does not know it ([] or null)."""
    raise_for_status(resp)
    items = as_list(load_json(resp), "session info body", resp, null_ok=True)
    return _session(items[0], resp) if items else None


# --- Transactions -------------------------------------------------------------------------


@shape_guard
def parse_txn(resp: Response) -> TxnResult:
    """200 -> the KV results; 409 -> raise TxnRolledBack with ((OpIndex, What), ...)."""
    if resp.status == 409:
        body = as_dict(load_json(resp), "txn body", resp)
        errs: list[tuple[int, str]] = []
        for item in as_list(body.get("Errors"), "Errors", resp, null_ok=True):
            d = as_dict(item, "txn error", resp)
            errs.append((get_uint(d, "OpIndex", resp), get_str(d, "What", resp)))
        raise e.TxnRolledBack(tuple(errs), detail=body_text(resp))
    raise_for_status(resp)
    body = as_dict(load_json(resp), "txn body", resp)
    results: list[KvEntry] = []
    for item in as_list(body.get("Results"), "Results", resp, null_ok=True):
        d = as_dict(item, "txn result", resp)
        if "KV" in d:
            results.append(_kv_entry(d["KV"], resp))
    return TxnResult(tuple(results))


# --- Agent, catalog, coordinates, status --------------------------------------------------


@shape_guard
def parse_agent_self(resp: Response) -> AgentSelf:
    raise_for_status(resp)
    config = as_dict(as_dict(load_json(resp), "agent self body", resp).get("Config"), "Config", resp)
    dc = get_str(config, "Datacenter", resp)
    node = get_str(config, "NodeName", resp)
    if not dc or not node:
        raise malformed(resp, "Config lacks Datacenter or NodeName")
    server = config.get("Server", False)
    if not isinstance(server, bool):
        raise malformed(resp, "Config.Server is not a bool")
    return AgentSelf(datacenter=dc, node_name=node, server=server)


@shape_guard
def parse_agent_ok(resp: Response) -> None:
    """For agent writes (check register/pass/warn/fail/deregister): 200 = done, body ignored."""
    raise_for_status(resp)


@shape_guard
def parse_agent_members(resp: Response) -> tuple[Member, ...]:
    raise_for_status(resp)
    out: list[Member] = []
    for item in as_list(load_json(resp), "members body", resp):
        d = as_dict(item, "member", resp)
        tags = as_dict(d.get("Tags") or {}, "Tags", resp)
        dc = tags.get("dc", "")
        role = tags.get("role", "")
        if not isinstance(dc, str) or not isinstance(role, str):
            raise malformed(resp, "member tags are not strings")
        out.append(
            Member(
                name=get_str(d, "Name", resp),
                addr=get_str(d, "Addr", resp),
                port=get_uint(d, "Port", resp),
                dc=dc,
                role=role,
                status=get_uint(d, "Status", resp),
            )
        )
    return tuple(out)


@shape_guard
def parse_catalog_datacenters(resp: Response) -> list[str]:
    raise_for_status(resp)
    return list(as_str_list(as_list(load_json(resp), "datacenters body", resp), "datacenters", resp))


def _coord(obj: Any, resp: Response) -> Coord:
    d = as_dict(obj, "Coord", resp)
    vec = as_list(d.get("Vec"), "Vec", resp, null_ok=True)
    if any(isinstance(x, bool) or not isinstance(x, int | float) for x in vec):
        raise malformed(resp, "Vec holds a non-number")
    return Coord(
        vec=tuple(float(x) for x in vec),
        error=get_float(d, "Error", resp),
        adjustment=get_float(d, "Adjustment", resp),
        height=get_float(d, "Height", resp),
    )


@shape_guard
def parse_coordinate_datacenters(resp: Response) -> tuple[DcCoords, ...]:
    raise_for_status(resp)
    out: list[DcCoords] = []
    for item in as_list(load_json(resp), "coordinates body", resp):
        d = as_dict(item, "datacenter coordinates", resp)
        nodes = []
        for n in as_list(d.get("Coordinates"), "Coordinates", resp, null_ok=True):
            nd = as_dict(n, "node coordinate", resp)
            nodes.append(NodeCoord(get_str(nd, "Node", resp), _coord(nd.get("Coord"), resp)))
        out.append(DcCoords(get_str(d, "Datacenter", resp), get_str(d, "AreaID", resp), tuple(nodes)))
    return tuple(out)


@shape_guard
def parse_status_leader(resp: Response) -> str:
    """The leader's "ip:port", or "" when the DC has no leader."""
    raise_for_status(resp)
    value = load_json(resp)
    if not isinstance(value, str):
        raise malformed(resp, "leader is not a string")
    return value
