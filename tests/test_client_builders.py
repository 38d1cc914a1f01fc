"""Every builder's exact method, path, query and body (coordinator.consul builders)."""

from __future__ import annotations

import base64
import json

import pytest

from coordinator.consul import sansio as s
from coordinator.consul.builders import BLOCKING_SLACK
from coordinator.consul.durations import format_duration, parse_go_duration


def b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


def body(req: s.Request) -> object:
    assert req.body is not None
    return json.loads(req.body)


# --- KV -------------------------------------------------------------------------------------


def test_kv_get_plain() -> None:
    assert s.kv_get("service/app/leader") == s.Request("GET", "/v1/kv/service/app/leader")


def test_kv_get_all_options_in_order() -> None:
    req = s.kv_get("a b/c", dc="dc2", consistency="consistent", index=42, wait=15, recurse=True)
    assert req.method == "GET"
    assert req.path == "/v1/kv/a%20b/c"
    assert req.params == (
        ("dc", "dc2"),
        ("consistent", ""),
        ("recurse", ""),
        ("index", "42"),
        ("wait", "15s"),
    )
    assert req.body is None
    assert req.timeout == pytest.approx(15 + 15 / 16 + BLOCKING_SLACK)


def test_kv_get_stale_and_explicit_timeout() -> None:
    req = s.kv_get("k", consistency="stale", index=7, wait=0.5, timeout=3.0)
    assert req.params == (("stale", ""), ("index", "7"), ("wait", "0.5s"))
    assert req.timeout == 3.0


def test_kv_get_index_zero_does_not_block_so_keeps_default_timeout() -> None:
    assert s.kv_get("k", index=0).timeout is None


def test_kv_get_blocking_without_wait_uses_consul_default_wait() -> None:
    assert s.kv_get("k", index=9).timeout == pytest.approx(300 + 300 / 16 + 1.0)


def test_kv_get_rejects_bad_consistency_and_negative_index() -> None:
    with pytest.raises(ValueError):
        s.kv_get("k", consistency="linearizable")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        s.kv_get("k", index=-1)


def test_kv_key_percent_encoding_keeps_slashes() -> None:
    assert s.kv_get("x/ü?#%").path == "/v1/kv/x/%C3%BC%3F%23%25"


def test_kv_keys() -> None:
    req = s.kv_keys("web/", separator="/", dc="dc1")
    assert req == s.Request("GET", "/v1/kv/web/", (("dc", "dc1"), ("keys", ""), ("separator", "/")))
    assert s.kv_keys("p").params == (("keys", ""),)


def test_kv_put_plain_body_is_raw_bytes() -> None:
    req = s.kv_put("k", b"\x00\xffv")
    assert req == s.Request("PUT", "/v1/kv/k", (), b"\x00\xffv")


def test_kv_put_acquire_cas_flags() -> None:
    req = s.kv_put("lock", b"me", dc="dc1", cas=0, acquire="sid", flags=7, timeout=2.0)
    assert req.params == (("dc", "dc1"), ("flags", "7"), ("cas", "0"), ("acquire", "sid"))
    assert req.timeout == 2.0
    assert s.kv_put("lock", b"", release="sid").params == (("release", "sid"),)


def test_kv_put_acquire_and_release_are_exclusive() -> None:
    with pytest.raises(ValueError):
        s.kv_put("k", b"", acquire="a", release="a")


def test_kv_delete() -> None:
    assert s.kv_delete("k") == s.Request("DELETE", "/v1/kv/k")
    req = s.kv_delete("p/", dc="dc3", cas=12, recurse=True)
    assert req.params == (("dc", "dc3"), ("recurse", ""), ("cas", "12"))


# --- Sessions -------------------------------------------------------------------------------


def test_session_create_minimal_leaves_consul_defaults() -> None:
    req = s.session_create(name="lock")
    assert (req.method, req.path, req.params) == ("PUT", "/v1/session/create", ())
    assert body(req) == {"Name": "lock", "Behavior": "release"}


def test_session_create_full() -> None:
    req = s.session_create(
        name="coord",
        node="n1",
        ttl=10,
        lock_delay=1.5,
        behavior="delete",
        checks=[],
        node_checks=["serfHealth", "coord-alive"],
        service_checks=["svc:1"],
        dc="dc2",
    )
    assert req.params == (("dc", "dc2"),)
    assert body(req) == {
        "Name": "coord",
        "Behavior": "delete",
        "Node": "n1",
        "TTL": "10s",
        "LockDelay": "1.5s",
        "Checks": [],
        "NodeChecks": ["serfHealth", "coord-alive"],
        "ServiceChecks": [{"ID": "svc:1"}],
    }


def test_session_create_zero_lock_delay_and_validation() -> None:
    assert body(s.session_create(name="x", lock_delay=0))["LockDelay"] == "0s"  # type: ignore[index]
    with pytest.raises(ValueError):
        s.session_create(name="x", lock_delay=1e-7)  # Consul would read "100ns" as 100 s
    with pytest.raises(ValueError):
        s.session_create(name="x", behavior="keep")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        s.session_create(name="x", ttl=-1)


def test_session_renew_destroy_info() -> None:
    sid = "adf4238a-882b-9ddc-4a9d-5b6758e4159e"
    assert s.session_renew(sid) == s.Request("PUT", f"/v1/session/renew/{sid}")
    destroy = s.session_destroy(sid, dc="dc1")
    assert destroy == s.Request("PUT", f"/v1/session/destroy/{sid}", (("dc", "dc1"),))
    req = s.session_info(sid, consistency="consistent", index=3, wait=2)
    assert req.method == "GET"
    assert req.path == f"/v1/session/info/{sid}"
    assert req.params == (("consistent", ""), ("index", "3"), ("wait", "2s"))
    assert s.session_renew("a/b").path == "/v1/session/renew/a%2Fb"


# --- Transactions ---------------------------------------------------------------------------


def test_txn_every_verb() -> None:
    ops = [
        s.TxnOp.set("a", b"1", flags=3),
        s.TxnOp.cas("b", b"2", 10),
        s.TxnOp.lock("c", b"3", "sid"),
        s.TxnOp.unlock("c", b"", "sid"),
        s.TxnOp.get("d"),
        s.TxnOp.get_or_empty("d2"),
        s.TxnOp.get_tree("t/"),
        s.TxnOp.check_index("e", 5),
        s.TxnOp.check_session("f", "sid"),
        s.TxnOp.check_not_exists("g"),
        s.TxnOp.delete("h"),
        s.TxnOp.delete_tree("i/"),
        s.TxnOp.delete_cas("j", 9),
    ]
    req = s.txn(ops, dc="dc1")
    assert (req.method, req.path, req.params) == ("PUT", "/v1/txn", (("dc", "dc1"),))
    assert body(req) == [
        {"KV": {"Verb": "set", "Key": "a", "Value": b64(b"1"), "Flags": 3}},
        {"KV": {"Verb": "cas", "Key": "b", "Value": b64(b"2"), "Index": 10}},
        {"KV": {"Verb": "lock", "Key": "c", "Value": b64(b"3"), "Session": "sid"}},
        {"KV": {"Verb": "unlock", "Key": "c", "Value": "", "Session": "sid"}},
        {"KV": {"Verb": "get", "Key": "d"}},
        {"KV": {"Verb": "get-or-empty", "Key": "d2"}},
        {"KV": {"Verb": "get-tree", "Key": "t/"}},
        {"KV": {"Verb": "check-index", "Key": "e", "Index": 5}},
        {"KV": {"Verb": "check-session", "Key": "f", "Session": "sid"}},
        {"KV": {"Verb": "check-not-exists", "Key": "g"}},
        {"KV": {"Verb": "delete", "Key": "h"}},
        {"KV": {"Verb": "delete-tree", "Key": "i/"}},
        {"KV": {"Verb": "delete-cas", "Key": "j", "Index": 9}},
    ]


def test_txn_limits_and_read_only_consistency() -> None:
    with pytest.raises(ValueError):
        s.txn([])
    with pytest.raises(ValueError):
        s.txn([s.TxnOp.get("k")] * (s.MAX_TXN_OPS + 1))
    assert s.txn([s.TxnOp.get("k")], consistency="stale").params == (("stale", ""),)


# --- Agent, catalog, coordinates, status ------------------------------------------------------


def test_agent_endpoints() -> None:
    assert s.agent_self() == s.Request("GET", "/v1/agent/self")
    reg = s.agent_check_register(
        "coord-alive", "coordinator alive", 2.0, notes="n", deregister_critical_after=60
    )
    assert (reg.method, reg.path, reg.params) == ("PUT", "/v1/agent/check/register", ())
    assert body(reg) == {
        "ID": "coord-alive",
        "Name": "coordinator alive",
        "TTL": "2s",
        "Notes": "n",
        "DeregisterCriticalServiceAfter": "60s",
    }
    assert s.agent_check_pass("c1") == s.Request("PUT", "/v1/agent/check/pass/c1")
    assert s.agent_check_pass("c1", "ok") == s.Request("PUT", "/v1/agent/check/pass/c1", (("note", "ok"),))
    assert s.agent_check_warn("c1").path == "/v1/agent/check/warn/c1"
    assert s.agent_check_fail("c1", note="bye").params == (("note", "bye"),)
    assert s.agent_check_fail("c1").path == "/v1/agent/check/fail/c1"
    assert s.agent_check_deregister("c1") == s.Request("PUT", "/v1/agent/check/deregister/c1")
    assert s.agent_members() == s.Request("GET", "/v1/agent/members", (("wan", "1"),))
    assert s.agent_members(wan=False) == s.Request("GET", "/v1/agent/members")


def test_catalog_coordinate_status() -> None:
    assert s.catalog_datacenters() == s.Request("GET", "/v1/catalog/datacenters")
    assert s.coordinate_datacenters() == s.Request("GET", "/v1/coordinate/datacenters")
    assert s.status_leader() == s.Request("GET", "/v1/status/leader")
    assert s.status_leader(dc="dc3", timeout=0.4) == s.Request(
        "GET", "/v1/status/leader", (("dc", "dc3"),), None, 0.4
    )


def test_builders_never_carry_a_token() -> None:
    req = s.kv_put("k", b"v", acquire="sid")
    assert "token" not in repr(req).lower()


# --- Durations ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (10, "10s"), (1.5, "1.5s"), (0.001, "0.001s"), (86400, "86400s"), (2.25, "2.25s")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("1m30s", 90), ("1.5h", 5400), ("250ms", 0.25), ("0", 0), ("-2s", -2), ("3us", 3e-6)],
)
def test_parse_go_duration(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "10", "s", "1x", "1.2.3s", "--1s"])
def test_parse_go_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_go_duration(text)


def test_format_duration_rejects_negative_and_nan() -> None:
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            format_duration(bad)
