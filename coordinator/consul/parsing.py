"""Pure parsers: each takes a `Response` and returns a typed value or raises a `ConsulError`.

Contract: a parser never raises anything but `ConsulError` subclasses, whatever the status,
headers or body (property-tested). HTTP statuses and Consul's error texts are translated
to the exception tree of coordinator.consul.errors here and nowhere else
(`raise_for_status`). A body that is not the documented shape is `MalformedResponse`.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
from collections.abc import Callable, Mapping
from typing import Any, ParamSpec, TypeVar

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
from coordinator.consul.wire import Response

P = ParamSpec("P")
T = TypeVar("T")

_UINT = re.compile(r"[0-9]{1,20}")

# Consul's 5xx texts (agent/structs/errors.go, state/kvs.go, session_endpoint.go), matched
# case-insensitively as substrings, first match wins.
_SERVER_TEXTS: tuple[tuple[str, type[e.ConsulError]], ...] = (
    ("no path to datacenter", e.NoPathToDatacenter),
    ("remote dc has no server currently reachable", e.RemoteDcUnreachable),
    ("no cluster leader", e.NoClusterLeader),
    ("not ready to serve consistent reads", e.NoClusterLeader),
    ("invalid session ttl", e.BadRequest),
    ("invalid session", e.InvalidSession),
    ("missing session", e.InvalidSession),
    ("acl not found", e.AclDenied),
    ("permission denied", e.AclDenied),
    ("rate limit", e.RateLimited),
    ("missing node registration", e.SessionRejected),
    ("missing check", e.SessionRejected),
    ("in critical state", e.SessionRejected),
    ("invalid behavior", e.BadRequest),
)


def _text(resp: Response) -> str:
    return resp.body.decode("utf-8", "replace").strip()


def _malformed(resp: Response, what: str) -> e.MalformedResponse:
    return e.MalformedResponse(f"malformed Consul response: {what}", status=resp.status, detail=_text(resp))


_SHAPE_ERRORS = (ValueError, TypeError, KeyError, IndexError, AttributeError, ArithmeticError, RecursionError)


def _shape_guard(fn: Callable[P, T]) -> Callable[P, T]:
    """Last line of the 'only ConsulError escapes' contract: any stray shape error becomes
    MalformedResponse (the typed accessors below are the first line)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return fn(*args, **kwargs)
        except e.ConsulError:
            raise
        except _SHAPE_ERRORS as exc:
            raise e.MalformedResponse(f"malformed Consul response: {type(exc).__name__}") from exc

    return wrapper


def raise_for_status(resp: Response) -> None:
    """Return if `resp` is a 2xx; otherwise raise the matching ConsulError.

    404 -> NotFound, 403 -> AclDenied, 429 -> RateLimited, other 4xx -> BadRequest,
    5xx -> by Consul's error text (see `_SERVER_TEXTS`), else ConsulServerError;
    any other status (1xx, 3xx, nonsense) -> MalformedResponse. Endpoints where 404 or 409
    is a normal answer handle it before calling this.
    """
    status = resp.status
    if 200 <= status < 300:
        return
    text = _text(resp)
    if status == 404:
        raise e.NotFound(f"Consul: not found: {text[:120]}", status=status, detail=text)
    if status == 403:
        raise e.AclDenied(f"Consul: ACL denied: {text[:120]}", status=status, detail=text)
    if status == 429:
        raise e.RateLimited(f"Consul: rate limited: {text[:120]}", status=status, detail=text)
    if 400 <= status < 500:
        raise e.BadRequest(f"Consul refused the request: {text[:120]}", status=status, detail=text)
    if 500 <= status < 600:
        lowered = text.lower()
        for needle, cls in _SERVER_TEXTS:
            if needle in lowered:
                raise cls(f"Consul: {text[:160]}", status=status, detail=text)
        raise e.ConsulServerError(f"Consul server error: {text[:160]}", status=status, detail=text)
    raise _malformed(resp, f"unexpected HTTP status {status}")


def _json(resp: Response) -> Any:
    try:
        return json.loads(resp.body)
    except (ValueError, RecursionError) as exc:
        raise _malformed(resp, "body is not JSON") from exc


def _get(obj: Mapping[str, Any], name: str, kind: type, default: Any, resp: Response) -> Any:
    value = obj.get(name, default)
    if value is None:
        value = default
    if isinstance(value, bool) and kind is int:
        raise _malformed(resp, f"{name} is a bool, not an integer")
    if not isinstance(value, kind):
        raise _malformed(resp, f"{name} has type {type(value).__name__}")
    return value


def _uint(obj: Mapping[str, Any], name: str, resp: Response, default: int = 0) -> int:
    value: int = _get(obj, name, int, default, resp)
    if value < 0:
        raise _malformed(resp, f"{name} is negative")
    return value


def _str(obj: Mapping[str, Any], name: str, resp: Response, default: str = "") -> str:
    value: str = _get(obj, name, str, default, resp)
    return value


def _float(obj: Mapping[str, Any], name: str, resp: Response) -> float:
    value = obj.get(name, 0.0)
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _malformed(resp, f"{name} is not a number")
    return float(value)


def _dict(value: Any, what: str, resp: Response) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _malformed(resp, f"{what} is not an object")
    return value


def _list(value: Any, what: str, resp: Response, *, null_ok: bool = False) -> list[Any]:
    if value is None and null_ok:
        return []
    if not isinstance(value, list):
        raise _malformed(resp, f"{what} is not an array")
    return value


def _str_list(value: Any, what: str, resp: Response) -> tuple[str, ...]:
    items = _list(value, what, resp, null_ok=True)
    if not all(isinstance(x, str) for x in items):
        raise _malformed(resp, f"{what} holds a non-string")
    return tuple(items)


def _bool_body(resp: Response) -> bool:
    raise_for_status(resp)
    value = _json(resp)
    if not isinstance(value, bool):
        raise _malformed(resp, "expected true or false")
    return value


# --- Query metadata and the blocking index ------------------------------------------------


def _header(resp: Response, name: str) -> str | None:
    value = resp.headers.get(name)
    if value is not None:
        return value
    for key, val in resp.headers.items():
        if key.lower() == name:
            return val
    return None


@_shape_guard
def parse_query_meta(resp: Response) -> QueryMeta:
    """Read X-Consul-Index (absent -> 0), X-Consul-KnownLeader, X-Consul-LastContact and
    X-Consul-Effective-Consistency. Unparsable values raise MalformedResponse."""
    raw_index = _header(resp, "x-consul-index")
    index = 0
    if raw_index is not None:
        if not _UINT.fullmatch(raw_index.strip()):
            raise _malformed(resp, "X-Consul-Index is not an unsigned integer")
        index = int(raw_index.strip())
    raw_leader = _header(resp, "x-consul-knownleader")
    known_leader: bool | None = None
    if raw_leader is not None:
        flag = raw_leader.strip().lower()
        if flag not in ("true", "false"):
            raise _malformed(resp, "X-Consul-KnownLeader is not true/false")
        known_leader = flag == "true"
    raw_contact = _header(resp, "x-consul-lastcontact")
    last_contact: int | None = None
    if raw_contact is not None:
        if not _UINT.fullmatch(raw_contact.strip()):
            raise _malformed(resp, "X-Consul-LastContact is not an unsigned integer")
        last_contact = int(raw_contact.strip())
    return QueryMeta(index, known_leader, last_contact, _header(resp, "x-consul-effective-consistency"))


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
    d = _dict(obj, "KV entry", resp)
    key = d.get("Key")
    if not isinstance(key, str):
        raise _malformed(resp, "KV entry without a string Key")
    raw = d.get("Value")
    value: bytes | None = None
    if raw is not None:
        if not isinstance(raw, str):
            raise _malformed(resp, "KV Value is not a base64 string")
        try:
            value = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise _malformed(resp, "KV Value is not valid base64") from exc
    session = _str(d, "Session", resp) or None
    return KvEntry(
        key=key,
        value=value,
        flags=_uint(d, "Flags", resp),
        create_index=_uint(d, "CreateIndex", resp),
        modify_index=_uint(d, "ModifyIndex", resp),
        lock_index=_uint(d, "LockIndex", resp),
        session=session,
    )


@_shape_guard
def parse_kv_get(resp: Response) -> KvRead:
    """200 -> the entries; 404 (missing key / empty prefix) -> no entries. Both carry meta."""
    if resp.status == 404:
        return KvRead((), parse_query_meta(resp))
    raise_for_status(resp)
    items = _list(_json(resp), "KV read body", resp)
    return KvRead(tuple(_kv_entry(x, resp) for x in items), parse_query_meta(resp))


@_shape_guard
def parse_kv_keys(resp: Response) -> KvKeys:
    """200 -> the key names; 404 -> none. Both carry meta."""
    if resp.status == 404:
        return KvKeys((), parse_query_meta(resp))
    raise_for_status(resp)
    return KvKeys(_str_list(_json(resp), "keys body", resp), parse_query_meta(resp))


@_shape_guard
def parse_kv_put(resp: Response) -> bool:
    """True = written / acquired / released; False = CAS mismatch, lock held, lock-delay."""
    return _bool_body(resp)


@_shape_guard
def parse_kv_delete(resp: Response) -> bool:
    """True = deleted (or already absent); False = CAS mismatch."""
    return _bool_body(resp)


# --- Sessions -----------------------------------------------------------------------------


def _session(obj: Any, resp: Response) -> SessionInfo:
    d = _dict(obj, "session", resp)
    sid = d.get("ID")
    if not isinstance(sid, str) or not sid:
        raise _malformed(resp, "session without an ID")
    raw_delay = d.get("LockDelay", 0)
    if isinstance(raw_delay, bool) or not isinstance(raw_delay, int | float | None):
        raise _malformed(resp, "LockDelay is not a number of nanoseconds")
    checks = _str_list(d.get("NodeChecks"), "NodeChecks", resp)
    for c in _str_list(d.get("Checks"), "Checks", resp):
        if c not in checks:
            checks += (c,)
    service_checks: list[str] = []
    for item in _list(d.get("ServiceChecks"), "ServiceChecks", resp, null_ok=True):
        service_checks.append(_str(_dict(item, "ServiceCheck", resp), "ID", resp))
    return SessionInfo(
        id=sid,
        name=_str(d, "Name", resp),
        node=_str(d, "Node", resp),
        ttl=_str(d, "TTL", resp),
        lock_delay=(raw_delay or 0) / 1e9,
        behavior=_str(d, "Behavior", resp, "release"),
        checks=checks,
        service_checks=tuple(service_checks),
        create_index=_uint(d, "CreateIndex", resp),
        modify_index=_uint(d, "ModifyIndex", resp),
    )


@_shape_guard
def parse_session_create(resp: Response) -> str:
    """The new session's ID."""
    raise_for_status(resp)
    sid = _dict(_json(resp), "session create body", resp).get("ID")
    if not isinstance(sid, str) or not sid:
        raise _malformed(resp, "no session ID")
    return sid


@_shape_guard
def parse_session_renew(resp: Response) -> SessionInfo:
    """The renewed session (its TTL may be higher than asked).

    404, or an empty list, -> SessionNotFound (unknown, destroyed or expired: the lock is lost).
    """
    if resp.status == 404:
        text = _text(resp)
        raise e.SessionNotFound(f"Consul: session not found: {text[:120]}", status=404, detail=text)
    raise_for_status(resp)
    items = _list(_json(resp), "session renew body", resp, null_ok=True)
    if not items:
        raise e.SessionNotFound("Consul: session not found (empty renew answer)", status=resp.status)
    return _session(items[0], resp)


@_shape_guard
def parse_session_destroy(resp: Response) -> bool:
    """Consul answers true (destroy is idempotent)."""
    return _bool_body(resp)


@_shape_guard
def parse_session_info(resp: Response) -> SessionInfo | None:
    """The session, or None when Consul does not know it ([] or null)."""
    raise_for_status(resp)
    items = _list(_json(resp), "session info body", resp, null_ok=True)
    return _session(items[0], resp) if items else None


# --- Transactions -------------------------------------------------------------------------


@_shape_guard
def parse_txn(resp: Response) -> TxnResult:
    """200 -> the KV results; 409 -> raise TxnRolledBack with ((OpIndex, What), ...)."""
    if resp.status == 409:
        body = _dict(_json(resp), "txn body", resp)
        errs: list[tuple[int, str]] = []
        for item in _list(body.get("Errors"), "Errors", resp, null_ok=True):
            d = _dict(item, "txn error", resp)
            errs.append((_uint(d, "OpIndex", resp), _str(d, "What", resp)))
        raise e.TxnRolledBack(tuple(errs), detail=_text(resp))
    raise_for_status(resp)
    body = _dict(_json(resp), "txn body", resp)
    results: list[KvEntry] = []
    for item in _list(body.get("Results"), "Results", resp, null_ok=True):
        d = _dict(item, "txn result", resp)
        if "KV" in d:
            results.append(_kv_entry(d["KV"], resp))
    return TxnResult(tuple(results))


# --- Agent, catalog, coordinates, status --------------------------------------------------


@_shape_guard
def parse_agent_self(resp: Response) -> AgentSelf:
    raise_for_status(resp)
    config = _dict(_dict(_json(resp), "agent self body", resp).get("Config"), "Config", resp)
    dc = _str(config, "Datacenter", resp)
    node = _str(config, "NodeName", resp)
    if not dc or not node:
        raise _malformed(resp, "Config lacks Datacenter or NodeName")
    server = config.get("Server", False)
    if not isinstance(server, bool):
        raise _malformed(resp, "Config.Server is not a bool")
    return AgentSelf(datacenter=dc, node_name=node, server=server)


@_shape_guard
def parse_agent_ok(resp: Response) -> None:
    """For agent writes (check register/pass/warn/fail/deregister): 200 = done, body ignored."""
    raise_for_status(resp)


@_shape_guard
def parse_agent_members(resp: Response) -> tuple[Member, ...]:
    raise_for_status(resp)
    out: list[Member] = []
    for item in _list(_json(resp), "members body", resp):
        d = _dict(item, "member", resp)
        tags = _dict(d.get("Tags") or {}, "Tags", resp)
        dc = tags.get("dc", "")
        role = tags.get("role", "")
        if not isinstance(dc, str) or not isinstance(role, str):
            raise _malformed(resp, "member tags are not strings")
        out.append(
            Member(
                name=_str(d, "Name", resp),
                addr=_str(d, "Addr", resp),
                port=_uint(d, "Port", resp),
                dc=dc,
                role=role,
                status=_uint(d, "Status", resp),
            )
        )
    return tuple(out)


@_shape_guard
def parse_catalog_datacenters(resp: Response) -> list[str]:
    raise_for_status(resp)
    return list(_str_list(_list(_json(resp), "datacenters body", resp), "datacenters", resp))


def _coord(obj: Any, resp: Response) -> Coord:
    d = _dict(obj, "Coord", resp)
    vec = _list(d.get("Vec"), "Vec", resp, null_ok=True)
    if any(isinstance(x, bool) or not isinstance(x, int | float) for x in vec):
        raise _malformed(resp, "Vec holds a non-number")
    return Coord(
        vec=tuple(float(x) for x in vec),
        error=_float(d, "Error", resp),
        adjustment=_float(d, "Adjustment", resp),
        height=_float(d, "Height", resp),
    )


@_shape_guard
def parse_coordinate_datacenters(resp: Response) -> tuple[DcCoords, ...]:
    raise_for_status(resp)
    out: list[DcCoords] = []
    for item in _list(_json(resp), "coordinates body", resp):
        d = _dict(item, "datacenter coordinates", resp)
        nodes = []
        for n in _list(d.get("Coordinates"), "Coordinates", resp, null_ok=True):
            nd = _dict(n, "node coordinate", resp)
            nodes.append(NodeCoord(_str(nd, "Node", resp), _coord(nd.get("Coord"), resp)))
        out.append(DcCoords(_str(d, "Datacenter", resp), _str(d, "AreaID", resp), tuple(nodes)))
    return tuple(out)


@_shape_guard
def parse_status_leader(resp: Response) -> str:
    """The leader's "ip:port", or "" when the DC has no leader."""
    raise_for_status(resp)
    value = _json(resp)
    if not isinstance(value, str):
        raise _malformed(resp, "leader is not a string")
    return value
