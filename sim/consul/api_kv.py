"""`/v1/kv/*` and `/v1/txn` handlers (agent/kvs_endpoint.go, agent/txn_endpoint.go)."""

from __future__ import annotations

import base64
import binascii
import json
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from sim.consul import render
from sim.consul.durations import NumError, go_quote, parse_uint64
from sim.consul.errors import ConsulError
from sim.consul.http_types import (
    COMPACT,
    Outcome,
    Reply,
    Request,
    Watch,
    ci_get,
    json_reply,
    json_reply_body,
    text_reply,
)
from sim.consul.kv import KVEntry
from sim.consul.txn import MAX_TXN_OPS, WRITE_VERBS, TxnOp

if TYPE_CHECKING:
    from sim.consul.api import Call, Handler


def _uint(text: str) -> int:
    """strconv.ParseUint(text, 10, 64); its error becomes an RPC error (HTTP 500 with Go's
    text), as KVSPut/KVSDelete return it unwrapped."""
    try:
        return parse_uint64(text)
    except NumError as err:
        raise ConsulError(str(err)) from None


def _conflict(req: Request, *flags: str) -> Reply | None:
    if sum(1 for f in flags if req.has(f)) > 1:
        encoded = urlencode(sorted(req.query))
        return text_reply(400, f"Conflicting flags: {encoded}\n")
    return None


def _not_found(headers: dict[str, str]) -> Reply:
    """Consul writes a bare 404 (no body, so no Content-Type) but keeps the query meta."""
    return Reply(404, {k: v for k, v in headers.items() if k != "Content-Type"}, b"")


ANY_KV = Watch(kv_prefix="")


def _prefix_watch(prefix: str, entries: list[KVEntry]) -> Watch:
    """What a listing of `prefix` depends on: with no entries KVSList may report the
    table index (moved by any KV write), so the whole table is watched."""
    return Watch(kv_prefix=prefix) if entries else ANY_KV


def kv(call: Call) -> Outcome:
    req = call.req
    key = call.rest
    if req.method == "GET":
        if req.has("keys"):
            return _get_keys(call, key)
        return _get(call, key)
    if req.method == "PUT":
        return _put(call, key)
    if req.method == "DELETE":
        return _delete(call, key)
    from sim.consul.api import method_not_allowed

    return method_not_allowed(call, ["GET", "PUT", "DELETE"])


def _get(call: Call, key: str) -> Outcome:
    req = call.req
    dc = call.dc
    if req.has("recurse"):
        def compute_list() -> tuple[int, Any]:
            index, entries = dc.kv.list(key)
            call.watch = _prefix_watch(key, entries)

            def build(headers: dict[str, str]) -> Reply:
                if not entries:
                    return _not_found(headers)
                return json_reply([render.kv_entry(e) for e in entries], headers=headers)
            return index, build
        return call.blocking(compute_list)
    if key == "":
        return text_reply(400, "Missing key name")

    def compute() -> tuple[int, Any]:
        entry = dc.kv.get(key)
        index = entry.modify_index if entry is not None else dc.kv.table_index
        # A missing key reports the table index, which any KV write moves.
        call.watch = Watch(kv_key=key) if entry is not None else ANY_KV

        def build(headers: dict[str, str]) -> Reply:
            if entry is None:
                return _not_found(headers)
            if req.has("raw"):
                return Reply(200, {**headers, "Content-Type": "text/plain",
                                   "X-Content-Type-Options": "nosniff",
                                   "Content-Security-Policy": "sandbox"}, entry.value or b"")
            return json_reply_body(_entry_body(entry), headers)
        return index, build
    return call.blocking(compute)


_ENTRY_BODIES: dict[int, tuple[KVEntry, bytes]] = {}
"""id(entry) -> (entry, the JSON body of a GET of that one entry). Entries are immutable
and replaced on write, so a body is valid while its entry object lives; keeping the entry
in the value keeps its id from being reused. Cleared when it reaches _ENTRY_BODIES_MAX."""
_ENTRY_BODIES_MAX = 4096


def _entry_body(entry: KVEntry) -> bytes:
    """``json_reply([render.kv_entry(entry)])``'s body, memoised per entry object (peers
    and the leader's watch read the same entry version many times)."""
    hit = _ENTRY_BODIES.get(id(entry))
    if hit is not None and hit[0] is entry:
        return hit[1]
    body = COMPACT.encode([render.kv_entry(entry)]).encode()
    if len(_ENTRY_BODIES) >= _ENTRY_BODIES_MAX:
        _ENTRY_BODIES.clear()
    _ENTRY_BODIES[id(entry)] = (entry, body)
    return body


def _get_keys(call: Call, prefix: str) -> Outcome:
    sep = call.req.param("separator")
    if sep is None:
        sep = call.req.param("seperator") or ""
    dc = call.dc

    def compute() -> tuple[int, Any]:
        index, entries = dc.kv.list(prefix)
        call.watch = _prefix_watch(prefix, entries)
        keys: list[str] = []
        seen: set[str] = set()
        for e in entries:
            if not sep:
                keys.append(e.key)
                continue
            pos = e.key.find(sep, len(prefix))
            if pos >= 0:
                k = e.key[: pos + len(sep)]
                if k not in seen:
                    seen.add(k)
                    keys.append(k)
            else:
                keys.append(e.key)

        def build(headers: dict[str, str]) -> Reply:
            if not keys and prefix != "":
                return _not_found(headers)
            return json_reply(keys, headers=headers)
        return index, build
    return call.blocking(compute)


def _put(call: Call, key: str) -> Outcome:
    req = call.req
    if key == "":
        return text_reply(400, "Missing key name")
    conflict = _conflict(req, "cas", "acquire", "release")
    if conflict is not None:
        return conflict
    flags = _uint(req.param("flags") or "") if req.has("flags") else 0
    verb, index, session = "set", 0, ""
    if req.has("cas"):
        verb, index = "cas", _uint(req.param("cas") or "")
    if req.has("acquire"):
        verb, session = "lock", req.param("acquire") or ""
    if req.has("release"):
        verb, session = "unlock", req.param("release") or ""
    limit = call.dc.config.kv_max_value_size
    if len(req.body) > limit:
        return text_reply(413, f"Request body({len(req.body)} bytes) too large, max size: {limit} bytes. "
                               "See https://developer.hashicorp.com/docs/agent/config/config-files"
                               "#kv_max_value_size.")
    gate = call.leader_gate(read=False)
    if gate is not None:
        return gate
    ok = call.dc.kv_apply(verb, key, req.body or None, flags, index, session, call.now)
    return json_reply(True if verb == "set" else ok)


def _delete(call: Call, key: str) -> Outcome:
    req = call.req
    conflict = _conflict(req, "recurse", "cas")
    if conflict is not None:
        return conflict
    verb, index = "delete", 0
    if req.has("recurse"):
        verb = "delete-tree"
    elif key == "":
        return text_reply(400, "Missing key name")
    if req.has("cas"):
        verb, index = "delete-cas", _uint(req.param("cas") or "")
    gate = call.leader_gate(read=False)
    if gate is not None:
        return gate
    ok = call.dc.kv_apply(verb, key, None, 0, index, "", call.now)
    return json_reply(ok if verb == "delete-cas" else True)


def _parse_ops(call: Call) -> list[TxnOp] | Reply:
    limit = call.dc.config.kv_max_value_size
    if len(call.req.body) > limit:
        return text_reply(413, f"Request body too large, max size: {limit} bytes")
    try:
        raw = json.loads(call.req.body or b"null")
        if not isinstance(raw, list):
            raise ValueError("json: cannot unmarshal into Go value of type api.TxnOps")
    except ValueError as err:
        return text_reply(400, f"Failed to parse body: {err}")
    if len(raw) > MAX_TXN_OPS:
        return text_reply(413, f"Transaction contains too many operations ({len(raw)} > {MAX_TXN_OPS})")
    ops: list[TxnOp] = []
    for item in raw:
        present, body = ci_get(item, "KV") if isinstance(item, dict) else (False, None)
        if not present or not isinstance(body, dict):
            return text_reply(400, "Failed to parse body: only KV operations are emulated")
        value_b64 = ci_get(body, "Value")[1]
        try:
            value = base64.b64decode(value_b64, validate=True) if isinstance(value_b64, str) else None
        except (binascii.Error, ValueError) as err:
            return text_reply(400, f"Failed to parse body: failed to decode value: {err}")
        key = str(ci_get(body, "Key")[1] or "")
        if value is not None and len(value) > limit:
            return text_reply(413, f"Value for key {go_quote(key)} is too large "
                                   f"({len(value)} > {limit} bytes)")
        flags, index = ci_get(body, "Flags")[1], ci_get(body, "Index")[1]
        if not isinstance(flags, int | None) or not isinstance(index, int | None):
            return text_reply(400, "Failed to parse body: Flags and Index must be integers")
        ops.append(TxnOp(str(ci_get(body, "Verb")[1] or ""), key, value or None, flags or 0, index or 0,
                         str(ci_get(body, "Session")[1] or "")))
    return ops


def txn(call: Call) -> Outcome:
    if call.req.method != "PUT":
        from sim.consul.api import method_not_allowed

        return method_not_allowed(call, ["PUT"])
    ops = _parse_ops(call)
    if isinstance(ops, Reply):
        return ops
    writes = any(op.verb in WRITE_VERBS for op in ops)
    gate = call.leader_gate(read=not writes)
    if gate is not None:
        return gate
    outcome = call.dc.txn(ops, call.now)
    body: dict[str, Any] = {
        "Results": None if outcome.results is None
        else [{"KV": render.kv_entry(e, with_value)} for e, with_value in outcome.results],
        "Errors": None if outcome.errors is None
        else [{"OpIndex": i, "What": what} for i, what in outcome.errors],
    }
    headers: dict[str, str] = {}
    if not writes:
        known = call.dc.leader
        body.update({"Index": 0, "LastContact": 0, "KnownLeader": known, "ConsistencyLevel": "",
                     "NotModified": False, "ResultsFilteredByACLs": False})
        headers = {"X-Consul-KnownLeader": "true" if known else "false",
                   "X-Consul-LastContact": str(call.dc.last_contact_ms(call.now))}
    return json_reply(body, 409 if outcome.errors else 200, headers)


ROUTES: list[tuple[str, bool, Handler]] = [("/v1/kv/", True, kv), ("/v1/txn", False, txn)]
