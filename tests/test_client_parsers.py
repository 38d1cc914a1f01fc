"""Parsers on Consul-documented sample bodies, error mapping, query meta, blocking index."""

from __future__ import annotations

import json

import pytest

from coordinator.consul import errors as e
from coordinator.consul import sansio as s

SID = "adf4238a-882b-9ddc-4a9d-5b6758e4159e"
READ_HEADERS = {
    "x-consul-index": "200",
    "x-consul-knownleader": "true",
    "x-consul-lastcontact": "0",
    "x-consul-effective-consistency": "leader",
}

# Samples copied from hashicorp/consul website/content/api-docs/*.mdx
KV_SAMPLE = b"""[
  {
    "CreateIndex": 100,
    "ModifyIndex": 200,
    "LockIndex": 200,
    "Key": "zip",
    "Flags": 0,
    "Value": "dGVzdA==",
    "Session": "adf4238a-882b-9ddc-4a9d-5b6758e4159e"
  }
]"""
SESSION_SAMPLE = b"""[
  {
    "ID": "adf4238a-882b-9ddc-4a9d-5b6758e4159e",
    "Name": "test-session",
    "Node": "raja-laptop-02",
    "LockDelay": 15000000000,
    "Behavior": "release",
    "TTL": "30s",
    "NodeChecks": [
      "serfHealth"
    ],
    "ServiceChecks": null,
    "CreateIndex": 1086449,
    "ModifyIndex": 1086449
  }
]"""
COORD_SAMPLE = b"""[
  {
    "Datacenter": "dc1",
    "AreaID": "WAN",
    "Coordinates": [
      {
        "Node": "agent-one",
        "Coord": {
          "Adjustment": 0,
          "Error": 1.5,
          "Height": 0,
          "Vec": [0, 0, 0, 0, 0, 0, 0, 0]
        }
      }
    ]
  }
]"""
MEMBERS_SAMPLE = b"""[
  {
    "Name": "foobar.dc1",
    "Addr": "10.1.10.12",
    "Port": 8302,
    "Tags": {
      "bootstrap": "1",
      "dc": "dc1",
      "id": "40e4a748-2192-161a-0510-9bf59fe950b5",
      "port": "8300",
      "role": "consul",
      "vsn": "1",
      "vsn_max": "1",
      "vsn_min": "1"
    },
    "Status": 1,
    "ProtocolMin": 1,
    "ProtocolMax": 2,
    "ProtocolCur": 2,
    "DelegateMin": 1,
    "DelegateMax": 3,
    "DelegateCur": 3
  }
]"""


def r(status: int, body: bytes | str | object = b"", headers: dict[str, str] | None = None) -> s.Response:
    if isinstance(body, str):
        raw = body.encode()
    elif isinstance(body, bytes):
        raw = body
    else:
        raw = json.dumps(body).encode()
    return s.Response(status, headers or {}, raw)


# --- KV -------------------------------------------------------------------------------------


def test_parse_kv_get_doc_sample() -> None:
    read = s.parse_kv_get(r(200, KV_SAMPLE, READ_HEADERS))
    assert read.entries == (
        s.KvEntry(
            key="zip",
            value=b"test",
            flags=0,
            create_index=100,
            modify_index=200,
            lock_index=200,
            session=SID,
        ),
    )
    assert read.entry is read.entries[0]
    assert read.meta == s.QueryMeta(200, True, 0, "leader")


def test_parse_kv_get_404_is_empty_with_meta() -> None:
    read = s.parse_kv_get(r(404, b"", {"x-consul-index": "17", "x-consul-knownleader": "true"}))
    assert read.entries == ()
    assert read.entry is None
    assert read.meta.index == 17


def test_parse_kv_get_null_value_and_no_session() -> None:
    body = [{"Key": "k", "Value": None, "Flags": 5, "CreateIndex": 1, "ModifyIndex": 2, "LockIndex": 0}]
    (entry,) = s.parse_kv_get(r(200, body)).entries
    assert entry.value is None
    assert entry.session is None
    assert entry.flags == 5


def test_parse_kv_keys_doc_sample() -> None:
    keys = s.parse_kv_keys(r(200, '["/web/bar", "/web/foo", "/web/subdir/"]', READ_HEADERS))
    assert keys.keys == ("/web/bar", "/web/foo", "/web/subdir/")
    assert keys.meta.index == 200
    assert s.parse_kv_keys(r(404)).keys == ()


@pytest.mark.parametrize(("text", "value"), [("true", True), ("false", False), ("true\n", True)])
def test_parse_kv_put_and_delete(text: str, value: bool) -> None:
    assert s.parse_kv_put(r(200, text)) is value
    assert s.parse_kv_delete(r(200, text)) is value


def test_kv_acquire_with_invalid_session_is_typed() -> None:
    with pytest.raises(e.InvalidSession) as info:
        s.parse_kv_put(r(500, 'invalid session "6a7f4d8e-0000"'))
    assert info.value.status == 500
    with pytest.raises(e.InvalidSession):
        s.parse_kv_put(r(500, "missing session"))


# --- Sessions -------------------------------------------------------------------------------


def test_parse_session_create_doc_sample() -> None:
    assert s.parse_session_create(r(200, '{"ID": "adf4238a-882b-9ddc-4a9d-5b6758e4159e"}')) == SID


def test_parse_session_info_doc_sample() -> None:
    info = s.parse_session_info(r(200, SESSION_SAMPLE, READ_HEADERS))
    assert info == s.SessionInfo(
        id=SID,
        name="test-session",
        node="raja-laptop-02",
        ttl="30s",
        lock_delay=15.0,
        behavior="release",
        checks=("serfHealth",),
        service_checks=(),
        create_index=1086449,
        modify_index=1086449,
    )
    assert info.ttl_seconds == 30.0
    assert info.node_checks == ("serfHealth",)


def test_parse_session_info_missing_is_none() -> None:
    assert s.parse_session_info(r(200, "[]")) is None
    assert s.parse_session_info(r(200, "null")) is None


def test_parse_session_checks_merged_and_service_checks() -> None:
    body = [{"ID": "x", "Checks": ["a", "serfHealth"], "NodeChecks": ["serfHealth"], "TTL": "",
             "ServiceChecks": [{"ID": "svc", "Namespace": ""}]}]
    info = s.parse_session_info(r(200, body))
    assert info is not None
    assert info.checks == ("serfHealth", "a")
    assert info.service_checks == ("svc",)
    assert info.ttl_seconds is None


def test_parse_session_renew_doc_sample_and_higher_ttl() -> None:
    body = json.loads(SESSION_SAMPLE)
    body[0]["TTL"] = "60s"
    info = s.parse_session_renew(r(200, body))
    assert info.ttl == "60s"
    assert info.ttl_seconds == 60.0


def test_parse_session_renew_404_is_session_not_found() -> None:
    with pytest.raises(e.SessionNotFound) as info:
        s.parse_session_renew(r(404, f"Session id '{SID}' not found"))
    assert isinstance(info.value, e.InvalidSession)
    assert isinstance(info.value, e.NotFound)
    with pytest.raises(e.SessionNotFound):
        s.parse_session_renew(r(200, "[]"))


def test_parse_session_destroy() -> None:
    assert s.parse_session_destroy(r(200, "true")) is True


@pytest.mark.parametrize(
    ("text", "cls"),
    [
        ("Invalid Session TTL '5000000000', must be between [10s=24h0m0s]", e.BadRequest),
        ("Invalid Behavior setting 'keep'", e.BadRequest),
        ("Missing node registration", e.SessionRejected),
        ("Missing check 'coord-alive' registration", e.SessionRejected),
        ("Check 'coord-alive' is in critical state", e.SessionRejected),
    ],
)
def test_session_create_rejections(text: str, cls: type[e.ConsulError]) -> None:
    with pytest.raises(cls):
        s.parse_session_create(r(500, text))


# --- Transactions ---------------------------------------------------------------------------


def test_parse_txn_applied() -> None:
    body = {
        "Results": [
            {"KV": {"LockIndex": 1, "Key": "a", "Flags": 0, "Value": None, "CreateIndex": 5,
                    "ModifyIndex": 6}},
            {"Node": {"ID": "67539c9d", "Node": "bar", "CreateIndex": 32, "ModifyIndex": 32}},
            {"KV": {"LockIndex": 0, "Key": "b", "Flags": 0, "Value": "dGVzdA==", "CreateIndex": 1,
                    "ModifyIndex": 2}},
        ],
        "Errors": None,
    }
    result = s.parse_txn(r(200, body))
    assert [x.key for x in result.results] == ["a", "b"]
    assert result.results[0].value is None
    assert result.results[1].value == b"test"
    assert s.parse_txn(r(200, {"Results": None, "Errors": None})).results == ()


def test_parse_txn_rolled_back() -> None:
    body = {
        "Results": None,
        "Errors": [
            {"OpIndex": 0, "What": 'failed to lock key "c": invalid session "x"'},
            {"OpIndex": 2, "What": "current modify index 7 != 5"},
        ],
    }
    with pytest.raises(e.TxnRolledBack) as info:
        s.parse_txn(r(409, body))
    assert info.value.errors == (
        (0, 'failed to lock key "c": invalid session "x"'),
        (2, "current modify index 7 != 5"),
    )
    assert info.value.status == 409


def test_parse_txn_too_large() -> None:
    with pytest.raises(e.BadRequest):
        s.parse_txn(r(413, "Transaction contains too many operations (65 > 64)"))


# --- Agent, catalog, coordinates, status ----------------------------------------------------


def test_parse_agent_self() -> None:
    body = {
        "Config": {"Datacenter": "dc1", "NodeName": "foobar", "NodeID": "9d754d17", "Server": True,
                   "Revision": "deadbeef", "Version": "1.0.0"},
        "DebugConfig": {},
        "Coord": {"Adjustment": 0, "Error": 1.5, "Vec": [0, 0, 0, 0, 0, 0, 0, 0]},
        "Member": {"Name": "foobar", "Addr": "10.1.10.12", "Port": 8301, "Status": 1},
        "Meta": {"instance_type": "i2.xlarge"},
    }
    assert s.parse_agent_self(r(200, body)) == s.AgentSelf("dc1", "foobar", True)
    with pytest.raises(e.MalformedResponse):
        s.parse_agent_self(r(200, {"Config": {"NodeName": "n"}}))


def test_parse_agent_ok() -> None:
    assert s.parse_agent_ok(r(200)) is None
    with pytest.raises(e.NotFound):
        s.parse_agent_ok(r(404, 'Unknown check ID "c1". Ensure that the check ID is passed.'))


def test_parse_agent_members_doc_sample() -> None:
    (m,) = s.parse_agent_members(r(200, MEMBERS_SAMPLE))
    assert m == s.Member("foobar.dc1", "10.1.10.12", 8302, "dc1", "consul", 1)
    assert m.status == s.Member.ALIVE


def test_parse_catalog_datacenters() -> None:
    assert s.parse_catalog_datacenters(r(200, '["dc1", "dc2"]')) == ["dc1", "dc2"]


def test_parse_coordinate_datacenters_doc_sample() -> None:
    (dc,) = s.parse_coordinate_datacenters(r(200, COORD_SAMPLE))
    assert (dc.datacenter, dc.area_id) == ("dc1", "WAN")
    (node,) = dc.coordinates
    assert node.node == "agent-one"
    assert node.coord == s.Coord((0.0,) * 8, 1.5, 0.0, 0.0)


def test_coord_rtt() -> None:
    a = s.Coord((0.003, 0.004), 0.1, 0.0, 0.001)
    b = s.Coord((0.0, 0.0), 0.1, 0.0, 0.001)
    assert a.rtt_to(b) == pytest.approx(0.005 + 0.002)
    neg = s.Coord((0.0, 0.0), 0.1, -1.0, 0.0)
    assert neg.rtt_to(b) == pytest.approx(0.001)  # a non-positive adjusted RTT is not used


def test_parse_status_leader() -> None:
    assert s.parse_status_leader(r(200, '"10.1.10.12:8300"')) == "10.1.10.12:8300"
    assert s.parse_status_leader(r(200, '""')) == ""


# --- Error mapping --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "text", "cls"),
    [
        (500, "No path to datacenter", e.NoPathToDatacenter),
        (500, "rpc error making call: No path to datacenter", e.NoPathToDatacenter),
        (500, "Remote DC has no server currently reachable", e.RemoteDcUnreachable),
        (500, "No cluster leader", e.NoClusterLeader),
        (500, "Not ready to serve consistent reads", e.NoClusterLeader),
        (500, 'invalid session "x"', e.InvalidSession),
        (403, "ACL not found", e.AclDenied),
        (403, "Permission denied", e.AclDenied),
        (500, "rpc error: ACL not found", e.AclDenied),
        (429, "Too many requests", e.RateLimited),
        (503, "RPC rate limit exceeded", e.RateLimited),
        (500, "something broke", e.ConsulServerError),
        (502, "", e.ConsulServerError),
        (400, "Request decode failed: bad", e.BadRequest),
        (405, "method GET not allowed", e.BadRequest),
        (413, "Value exceeds 524288 byte limit", e.BadRequest),
        (404, "", e.NotFound),
        (302, "", e.MalformedResponse),
        (100, "", e.MalformedResponse),
    ],
)
def test_raise_for_status(status: int, text: str, cls: type[e.ConsulError]) -> None:
    with pytest.raises(cls) as info:
        s.raise_for_status(r(status, text))
    assert info.value.status == status
    assert type(info.value) is cls


def test_error_groups() -> None:
    unavailable: list[type[e.ConsulError]] = [
        e.ConsulUnreachable, e.ConsulTimeout, e.NoClusterLeader, e.RateLimited, e.ConsulServerError
    ]
    assert all(issubclass(cls, e.ConsulUnavailable) for cls in unavailable)
    for dc_cls in (e.NoPathToDatacenter, e.RemoteDcUnreachable):
        assert issubclass(dc_cls, e.DatacenterUnreachable)
        assert not issubclass(dc_cls, e.ConsulUnavailable)
    rejected: list[type[e.ConsulError]] = [e.BadRequest, e.AclDenied, e.NotFound, e.SessionRejected]
    assert all(issubclass(cls, e.RequestRejected) for cls in rejected)
    assert set(e.PEER_UNREACHABLE) == {e.ConsulUnavailable, e.DatacenterUnreachable}


def test_server_error_keeps_status_and_body() -> None:
    with pytest.raises(e.ConsulServerError) as info:
        s.parse_kv_get(r(500, "raft: apply failed"))
    assert info.value.status == 500
    assert info.value.detail == "raft: apply failed"
    assert "raft: apply failed" in str(info.value)


def test_404_on_kv_is_normal_but_500_is_not() -> None:
    with pytest.raises(e.NoClusterLeader):
        s.parse_kv_get(r(500, "No cluster leader"))


@pytest.mark.parametrize(
    "resp",
    [
        r(200, b"{not json"),
        r(200, b"\xff\xfe"),
        r(200, b""),
        r(200, '{"Key": "k"}'),
        r(200, '[{"Value": "dGVzdA=="}]'),
        r(200, '[{"Key": "k", "Value": "***"}]'),
        r(200, '[{"Key": "k", "ModifyIndex": -1}]'),
        r(200, '[{"Key": "k", "ModifyIndex": true}]'),
        r(200, '[{"Key": "k", "Flags": "0"}]'),
        r(200, "[1]"),
        r(200, "[" * 100000),
    ],
)
def test_malformed_kv_bodies(resp: s.Response) -> None:
    with pytest.raises(e.MalformedResponse):
        s.parse_kv_get(resp)


def test_malformed_other_shapes() -> None:
    with pytest.raises(e.MalformedResponse):
        s.parse_kv_put(r(200, '"yes"'))
    with pytest.raises(e.MalformedResponse):
        s.parse_session_create(r(200, "{}"))
    with pytest.raises(e.MalformedResponse):
        s.parse_session_info(r(200, '[{"Name": "no id"}]'))
    with pytest.raises(e.MalformedResponse):
        s.parse_status_leader(r(200, "null"))
    with pytest.raises(e.MalformedResponse):
        s.parse_catalog_datacenters(r(200, '["dc1", 2]'))
    with pytest.raises(e.MalformedResponse):
        s.parse_txn(r(409, '{"Errors": [{"OpIndex": "zero"}]}'))
    with pytest.raises(e.MalformedResponse):
        s.parse_coordinate_datacenters(r(200, '[{"Coordinates": [{"Coord": {"Vec": ["x"]}}]}]'))
    with pytest.raises(e.MalformedResponse):
        huge = "9" * 400
        body = '[{"Coordinates": [{"Coord": {"Vec": [' + huge + "]}}]}]"
        s.parse_coordinate_datacenters(r(200, body))


# --- Query meta and blocking index ----------------------------------------------------------


def test_parse_query_meta_absent_headers() -> None:
    assert s.parse_query_meta(r(200)) == s.QueryMeta(0, None, None, None)


def test_parse_query_meta_values() -> None:
    meta = s.parse_query_meta(r(200, headers={"x-consul-index": "18446744073709551615",
                                             "x-consul-knownleader": "false",
                                             "x-consul-lastcontact": "1234",
                                             "x-consul-effective-consistency": "stale"}))
    assert meta == s.QueryMeta(2**64 - 1, False, 1234, "stale")


def test_parse_query_meta_mixed_case_header_names() -> None:
    meta = s.parse_query_meta(r(200, headers={"X-Consul-Index": "5", "X-Consul-KnownLeader": "true"}))
    assert (meta.index, meta.known_leader) == (5, True)


@pytest.mark.parametrize(
    "headers",
    [
        {"x-consul-index": "-1"},
        {"x-consul-index": "1_000"},
        {"x-consul-index": "abc"},
        {"x-consul-index": "\u0661"},
        {"x-consul-knownleader": "yes"},
        {"x-consul-lastcontact": "1.5"},
    ],
)
def test_parse_query_meta_malformed(headers: dict[str, str]) -> None:
    with pytest.raises(e.MalformedResponse):
        s.parse_query_meta(r(200, headers=headers))


@pytest.mark.parametrize(
    ("previous", "returned", "expected"),
    [
        (0, 0, 1),  # a buggy 0 must not turn the loop into a busy loop
        (0, 5, 5),
        (5, 5, 5),  # timeout with no change: wait on the same index again
        (5, 9, 9),
        (9, 5, 0),  # went backwards (snapshot restore, deleted key): restart
        (9, 0, 0),  # backwards to 0: restart once; the next call sees previous=0 -> 1
        (1, 1, 1),
    ],
)
def test_next_blocking_index(previous: int, returned: int, expected: int) -> None:
    assert s.next_blocking_index(previous, returned) == expected


def test_blocking_loop_never_does_two_non_blocking_reads_in_a_row() -> None:
    index = 9
    for returned in (0, 0, 0, 3, 2, 2):
        nxt = s.next_blocking_index(index, returned)
        assert not (index == 0 and nxt == 0)
        index = nxt
