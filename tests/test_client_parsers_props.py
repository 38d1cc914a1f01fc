"""Property: parsers raise nothing but ConsulError subclasses, whatever the response."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from coordinator.consul import errors as e
from coordinator.consul import sansio as s

PARSERS: list[Callable[[s.Response], Any]] = [
    s.parse_query_meta,
    s.parse_kv_get,
    s.parse_kv_keys,
    s.parse_kv_put,
    s.parse_kv_delete,
    s.parse_session_create,
    s.parse_session_renew,
    s.parse_session_destroy,
    s.parse_session_info,
    s.parse_txn,
    s.parse_agent_self,
    s.parse_agent_ok,
    s.parse_agent_members,
    s.parse_catalog_datacenters,
    s.parse_coordinate_datacenters,
    s.parse_status_leader,
]

FIELD_NAMES = st.sampled_from(
    ["Key", "Value", "Flags", "CreateIndex", "ModifyIndex", "LockIndex", "Session", "ID", "Name",
     "Node", "TTL", "LockDelay", "Behavior", "Checks", "NodeChecks", "ServiceChecks", "Results",
     "Errors", "OpIndex", "What", "KV", "Config", "Datacenter", "NodeName", "Server", "Addr",
     "Port", "Tags", "Status", "Coordinates", "Coord", "Vec", "Error", "Height", "Adjustment",
     "AreaID", "dc", "role"]
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12)
    | st.just("dGVzdA=="),
    lambda kids: st.lists(kids, max_size=4)
    | st.dictionaries(FIELD_NAMES | st.text(max_size=5), kids, max_size=6),
    max_leaves=20,
)
BODIES = JSON.map(lambda v: json.dumps(v).encode()) | st.binary(max_size=64)
STATUSES = st.sampled_from([200, 200, 200, 404, 409, 403, 429, 500, 503, 400, 302]) | st.integers(0, 999)
HEADER_VALUES = st.sampled_from(
    ["1", "0", "true", "false", "-3", "x", "", "99999999999999999999999"]
) | st.text(max_size=6)
HEADERS = st.dictionaries(
    st.sampled_from(
        ["x-consul-index", "x-consul-knownleader", "x-consul-lastcontact", "x-consul-effective-consistency"]
    ),
    HEADER_VALUES,
)


@given(status=STATUSES, headers=HEADERS, body=BODIES, which=st.integers(0, len(PARSERS) - 1))
def test_parsers_raise_only_consul_errors(
    status: int, headers: dict[str, str], body: bytes, which: int
) -> None:
    resp = s.Response(status, headers, body)
    try:
        PARSERS[which](resp)
    except e.ConsulError as exc:
        assert isinstance(exc.status, int | None)


@given(body=JSON)
def test_kv_parser_on_documented_envelope(body: Any) -> None:
    resp = s.Response(200, {"x-consul-index": "3"}, json.dumps([body]).encode())
    try:
        read = s.parse_kv_get(resp)
    except e.MalformedResponse:
        return
    assert len(read.entries) == 1
    assert isinstance(read.entries[0].key, str)


@given(previous=st.integers(0, 2**64), returned=st.integers(0, 2**64))
def test_next_blocking_index_rules(previous: int, returned: int) -> None:
    nxt = s.next_blocking_index(previous, returned)
    if returned < previous:
        assert nxt == 0
    else:
        assert nxt == max(1, returned)
        assert nxt >= 1
