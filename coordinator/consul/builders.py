"""Pure builders: each returns the `Request` for one Consul HTTP endpoint.

Contracts shared by every builder:
- Query parameters come in a fixed order: `dc` first, then the consistency flag, then the
  endpoint's own parameters, then `index`/`wait` for blocking reads. Flags are ("name", "").
- Durations are in seconds (float) and rendered as Go duration strings ("10s", "1.5s").
- Keys are percent-encoded with "/" kept; IDs in paths are fully percent-encoded.
- No builder adds an ACL token: the adapter sends `X-Consul-Token`.
- Blocking reads (index > 0) get a default `timeout` of `blocking_timeout(wait)`, which
  outlasts Consul's wait + wait/16 jitter; pass `timeout` to override.
- Programming errors (negative durations, bad consistency, too many txn ops) raise ValueError.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any, Literal
from urllib.parse import quote

from coordinator.consul.durations import format_duration
from coordinator.consul.models import TxnOp
from coordinator.consul.wire import Request

Consistency = Literal["default", "consistent", "stale"]
Behavior = Literal["release", "delete"]

DEFAULT_BLOCKING_WAIT = 300.0
"""Consul's wait when a blocking query sets none (5 minutes)."""
BLOCKING_SLACK = 1.0
"""Seconds added on top of wait + wait/16 for the network and the server's own work."""
MAX_TXN_OPS = 64
"""Ops per transaction accepted by every Consul version (newer ones accept 128)."""

LOCK_DELAY_MIN_NONZERO = 1e-6
"""Consul multiplies a LockDelay below 1000 ns by one second (agent/session_endpoint.go)."""

Params = tuple[tuple[str, str], ...]


def blocking_timeout(wait: float | None) -> float:
    """Client timeout for a blocking query: wait + wait/16 (Consul's jitter) + BLOCKING_SLACK."""
    w = DEFAULT_BLOCKING_WAIT if wait is None else wait
    return w + w / 16 + BLOCKING_SLACK


def _key_path(prefix: str, key: str) -> str:
    return prefix + quote(key, safe="/")


def _id_path(prefix: str, ident: str) -> str:
    return prefix + quote(ident, safe="")


def _dc(dc: str | None) -> Params:
    return (("dc", dc),) if dc else ()


def _consistency(mode: Consistency) -> Params:
    if mode == "default":
        return ()
    if mode in ("consistent", "stale"):
        return ((mode, ""),)
    raise ValueError(f"consistency must be default, consistent or stale, got {mode!r}")


def _blocking(index: int | None, wait: float | None) -> Params:
    out: Params = ()
    if index is not None:
        if index < 0:
            raise ValueError(f"index must be >= 0, got {index}")
        out += (("index", str(index)),)
    if wait is not None:
        out += (("wait", format_duration(wait)),)
    return out


def _read_timeout(index: int | None, wait: float | None, timeout: float | None) -> float | None:
    if timeout is not None:
        return timeout
    if index is not None and index > 0:
        return blocking_timeout(wait)
    return None


_COMPACT = json.JSONEncoder(separators=(",", ":"))
"""``json.dumps(obj, separators=(",", ":"))``'s encoder, built once (json.dumps builds a
new one per call when given options)."""


def _json(obj: Any) -> bytes:
    return _COMPACT.encode(obj).encode()


# --- KV -----------------------------------------------------------------------------------


def kv_get(
    key: str,
    *,
    dc: str | None = None,
    consistency: Consistency = "default",
    index: int | None = None,
    wait: float | None = None,
    recurse: bool = False,
    timeout: float | None = None,
) -> Request:
    """GET /v1/kv/<key>[?dc][&consistent|stale][&recurse][&index&wait]."""
    params = _dc(dc) + _consistency(consistency)
    if recurse:
        params += (("recurse", ""),)
    params += _blocking(index, wait)
    return Request("GET", _key_path("/v1/kv/", key), params, None, _read_timeout(index, wait, timeout))


def kv_keys(
    prefix: str,
    *,
    separator: str | None = None,
    dc: str | None = None,
    consistency: Consistency = "default",
    index: int | None = None,
    wait: float | None = None,
    timeout: float | None = None,
) -> Request:
    """GET /v1/kv/<prefix>?keys[&separator=...]: key names only (implies recurse)."""
    params = _dc(dc) + _consistency(consistency) + (("keys", ""),)
    if separator is not None:
        params += (("separator", separator),)
    params += _blocking(index, wait)
    return Request("GET", _key_path("/v1/kv/", prefix), params, None, _read_timeout(index, wait, timeout))


def kv_put(
    key: str,
    value: bytes,
    *,
    dc: str | None = None,
    cas: int | None = None,
    acquire: str | None = None,
    release: str | None = None,
    flags: int | None = None,
    timeout: float | None = None,
) -> Request:
    """PUT /v1/kv/<key> with the raw value as body. `cas=0` = create only if absent."""
    if acquire is not None and release is not None:
        raise ValueError("acquire and release are mutually exclusive")
    params = _dc(dc)
    if flags is not None:
        params += (("flags", str(flags)),)
    if cas is not None:
        params += (("cas", str(cas)),)
    if acquire is not None:
        params += (("acquire", acquire),)
    if release is not None:
        params += (("release", release),)
    return Request("PUT", _key_path("/v1/kv/", key), params, bytes(value), timeout)


def kv_delete(
    key: str,
    *,
    dc: str | None = None,
    cas: int | None = None,
    recurse: bool = False,
    timeout: float | None = None,
) -> Request:
    """DELETE /v1/kv/<key>. Consul needs `cas` > 0 to delete with check-and-set."""
    params = _dc(dc)
    if recurse:
        params += (("recurse", ""),)
    if cas is not None:
        params += (("cas", str(cas)),)
    return Request("DELETE", _key_path("/v1/kv/", key), params, None, timeout)


# --- Sessions -----------------------------------------------------------------------------


def session_create(
    *,
    name: str,
    node: str | None = None,
    ttl: float | None = None,
    lock_delay: float | None = None,
    behavior: Behavior = "release",
    checks: Sequence[str] | None = None,
    node_checks: Sequence[str] | None = None,
    service_checks: Sequence[str] | None = None,
    dc: str | None = None,
    timeout: float | None = None,
) -> Request:
    """PUT /v1/session/create. Omitted fields take Consul's defaults (the agent's node,
    LockDelay 15s, checks ["serfHealth"], no TTL). An empty `checks`/`node_checks` list is
    sent as [] = a session bound to no node health check (Consul drops its default
    serfHealth per fixupEmptySessionChecks: `node_checks=[mine]` binds ONLY `mine`, while
    `checks=[mine]` alone keeps serfHealth through the default NodeChecks).
    A non-zero `lock_delay` must be >= 1 µs: Consul reads smaller values as seconds.
    """
    if behavior not in ("release", "delete"):
        raise ValueError(f"behavior must be release or delete, got {behavior!r}")
    body: dict[str, Any] = {"Name": name, "Behavior": behavior}
    if node is not None:
        body["Node"] = node
    if ttl is not None:
        body["TTL"] = format_duration(ttl)
    if lock_delay is not None:
        if 0 < lock_delay < LOCK_DELAY_MIN_NONZERO:
            # Consul reads a LockDelay below 1000ns as a number of seconds.
            raise ValueError(f"lock_delay must be 0 or >= 1µs, got {lock_delay!r}")
        body["LockDelay"] = format_duration(lock_delay)
    if checks is not None:
        body["Checks"] = list(checks)
    if node_checks is not None:
        body["NodeChecks"] = list(node_checks)
    if service_checks is not None:
        body["ServiceChecks"] = [{"ID": c} for c in service_checks]
    return Request("PUT", "/v1/session/create", _dc(dc), _json(body), timeout)


def session_renew(session_id: str, *, dc: str | None = None, timeout: float | None = None) -> Request:
    """PUT /v1/session/renew/<id>."""
    return Request("PUT", _id_path("/v1/session/renew/", session_id), _dc(dc), None, timeout)


def session_destroy(session_id: str, *, dc: str | None = None, timeout: float | None = None) -> Request:
    """PUT /v1/session/destroy/<id> (idempotent)."""
    return Request("PUT", _id_path("/v1/session/destroy/", session_id), _dc(dc), None, timeout)


def session_info(
    session_id: str,
    *,
    dc: str | None = None,
    consistency: Consistency = "default",
    index: int | None = None,
    wait: float | None = None,
    timeout: float | None = None,
) -> Request:
    """GET /v1/session/info/<id> (blocking-capable)."""
    params = _dc(dc) + _consistency(consistency) + _blocking(index, wait)
    path = _id_path("/v1/session/info/", session_id)
    return Request("GET", path, params, None, _read_timeout(index, wait, timeout))


# --- Transactions -------------------------------------------------------------------------


def txn_op_json(op: TxnOp) -> dict[str, Any]:
    """The `{"KV": {...}}` object of one op; unused fields are left out."""
    kv: dict[str, Any] = {"Verb": op.verb, "Key": op.key}
    if op.value is not None:
        kv["Value"] = base64.b64encode(op.value).decode("ascii")
    if op.flags is not None:
        kv["Flags"] = op.flags
    if op.index is not None:
        kv["Index"] = op.index
    if op.session is not None:
        kv["Session"] = op.session
    return {"KV": kv}


def txn(
    ops: Sequence[TxnOp],
    *,
    dc: str | None = None,
    consistency: Consistency = "default",
    timeout: float | None = None,
) -> Request:
    """PUT /v1/txn. `consistency` only matters for read-only transactions (Consul ignores it
    when any op writes). Between 1 and MAX_TXN_OPS ops.
    """
    if not ops:
        raise ValueError("a transaction needs at least one op")
    if len(ops) > MAX_TXN_OPS:
        raise ValueError(f"a transaction holds at most {MAX_TXN_OPS} ops, got {len(ops)}")
    params = _dc(dc) + _consistency(consistency)
    return Request("PUT", "/v1/txn", params, _json([txn_op_json(op) for op in ops]), timeout)


# --- Agent, catalog, coordinates, status --------------------------------------------------


def agent_self(*, timeout: float | None = None) -> Request:
    """GET /v1/agent/self."""
    return Request("GET", "/v1/agent/self", (), None, timeout)


def agent_check_register(
    check_id: str,
    name: str,
    ttl_seconds: float,
    *,
    notes: str | None = None,
    deregister_critical_after: float | None = None,
    timeout: float | None = None,
) -> Request:
    """PUT /v1/agent/check/register for a TTL check (starts critical until first passed)."""
    body: dict[str, Any] = {"ID": check_id, "Name": name, "TTL": format_duration(ttl_seconds)}
    if notes is not None:
        body["Notes"] = notes
    if deregister_critical_after is not None:
        body["DeregisterCriticalServiceAfter"] = format_duration(deregister_critical_after)
    return Request("PUT", "/v1/agent/check/register", (), _json(body), timeout)


def _check_status(verb: str, check_id: str, note: str | None, timeout: float | None) -> Request:
    params: Params = (("note", note),) if note is not None else ()
    return Request("PUT", _id_path(f"/v1/agent/check/{verb}/", check_id), params, None, timeout)


def agent_check_pass(check_id: str, note: str | None = None, *, timeout: float | None = None) -> Request:
    """PUT /v1/agent/check/pass/<id>[?note=...]."""
    return _check_status("pass", check_id, note, timeout)


def agent_check_warn(check_id: str, note: str | None = None, *, timeout: float | None = None) -> Request:
    """PUT /v1/agent/check/warn/<id>[?note=...]."""
    return _check_status("warn", check_id, note, timeout)


def agent_check_fail(check_id: str, note: str | None = None, *, timeout: float | None = None) -> Request:
    """PUT /v1/agent/check/fail/<id>[?note=...]: any session bound to it is invalidated."""
    return _check_status("fail", check_id, note, timeout)


def agent_check_deregister(check_id: str, *, timeout: float | None = None) -> Request:
    """PUT /v1/agent/check/deregister/<id>."""
    return Request("PUT", _id_path("/v1/agent/check/deregister/", check_id), (), None, timeout)


def agent_members(*, wan: bool = True, timeout: float | None = None) -> Request:
    """GET /v1/agent/members[?wan=1] (WAN members are only known to servers)."""
    return Request("GET", "/v1/agent/members", (("wan", "1"),) if wan else (), None, timeout)


def catalog_datacenters(*, timeout: float | None = None) -> Request:
    """GET /v1/catalog/datacenters: known DCs by estimated RTT. Not a reachability test."""
    return Request("GET", "/v1/catalog/datacenters", (), None, timeout)


def coordinate_datacenters(*, timeout: float | None = None) -> Request:
    """GET /v1/coordinate/datacenters: WAN coordinates of every DC's servers."""
    return Request("GET", "/v1/coordinate/datacenters", (), None, timeout)


def status_leader(*, dc: str | None = None, timeout: float | None = None) -> Request:
    """GET /v1/status/leader[?dc=X]: "ip:port" or "" — the cheapest cross-DC probe."""
    return Request("GET", "/v1/status/leader", _dc(dc), None, timeout)
