"""Pure emulator (model + router) driven with explicit `now`: Consul's documented edges."""

from __future__ import annotations

import base64
import json
import random
from typing import Any

import pytest

from sim.consul.api import Router
from sim.consul.federation import Federation
from sim.consul.http_types import Block, Forward, Reply, Request, Resume
from sim.consul.model import Datacenter, DcConfig
from sim.consul.sessions import SessionExpiry


class Emu:
    def __init__(self, expiry: SessionExpiry = "2ttl", acl: str | None = None, hold: float = 0.0) -> None:
        rng = random.Random(7)
        self.dc = Datacenter(DcConfig("dc1", session_expiry=expiry, rpc_hold_timeout=hold), rng)
        self.router = Router(self.dc, Federation(["dc1", "dc2"]), rng, acl)

    def call(self, method: str, path: str, query: list[tuple[str, str]] | None = None,
             body: bytes | object = b"", now: float = 0.0, headers: dict[str, str] | None = None,
             resume: Resume | None = None) -> Reply | Block | Forward:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.dc.advance(now)
        return self.router.handle(Request(method, path, tuple(query or []), headers or {}, raw), now, resume)

    def ok(self, *args: Any, **kw: Any) -> Reply:
        out = self.call(*args, **kw)
        assert isinstance(out, Reply), out
        return out

    def session(self, now: float = 0.0, **body: object) -> str:
        r = self.ok("PUT", "/v1/session/create", body=body or b"", now=now)
        assert r.status == 200, r.text
        sid: str = r.json()["ID"]
        return sid

    def acquire(self, key: str, sid: str, now: float = 0.0, value: bytes = b"v") -> object:
        r = self.ok("PUT", f"/v1/kv/{key}", [("acquire", sid)], value, now=now)
        assert r.status == 200, r.text
        return r.json()

    def entry(self, key: str, now: float = 0.0) -> Any:
        r = self.ok("GET", f"/v1/kv/{key}", now=now)
        if r.status == 404:
            return None
        got = r.json()
        assert isinstance(got, list)
        return got[0]


# ---- sessions -------------------------------------------------------------------------

@pytest.mark.parametrize("ttl", ["9s", "9999ms", "86401s", "25h"])
def test_session_ttl_out_of_bounds_is_500_with_nanoseconds(ttl: str) -> None:
    emu = Emu()
    r = emu.ok("PUT", "/v1/session/create", body={"TTL": ttl})
    assert r.status == 500
    assert r.text.startswith("Invalid Session TTL '")
    assert r.text.endswith("', must be between [10s=24h0m0s]")
    assert r.text.split("'")[1].isdigit()


def test_session_ttl_bounds_and_no_ttl_accepted() -> None:
    emu = Emu()
    for ttl in ("10s", "86400s", "24h", "", "0s"):
        emu.session(TTL=ttl)
    assert emu.ok("PUT", "/v1/session/create", body={"TTL": "5x"}).text == \
        'Session TTL \'5x\' invalid: time: unknown unit "x" in duration "5x"'


def test_ttl_at_lower_bound_expires_exactly_at_ttl_in_ttl_mode() -> None:
    emu = Emu("ttl")
    sid = emu.session(TTL="10s", Checks=[])
    assert emu.dc.next_deadline() == 10.0
    emu.dc.advance(9.999)
    assert sid in emu.dc.sessions
    emu.dc.advance(10.0)
    assert sid not in emu.dc.sessions


def test_default_expiry_is_twice_ttl_and_renew_rearms() -> None:
    emu = Emu()
    sid = emu.session(TTL="10s")
    emu.dc.advance(19.9)
    assert sid in emu.dc.sessions
    r = emu.ok("PUT", f"/v1/session/renew/{sid}", now=19.9)
    assert r.status == 200 and r.json()[0]["ID"] == sid
    emu.dc.advance(39.8)
    assert sid in emu.dc.sessions
    emu.dc.advance(39.9)
    assert sid not in emu.dc.sessions
    r = emu.ok("PUT", f"/v1/session/renew/{sid}", now=40)
    assert (r.status, r.text) == (404, f"Session id '{sid}' not found")


def test_random_expiry_between_ttl_and_twice_ttl() -> None:
    emu = Emu("random")
    for _ in range(20):
        emu.session(TTL="10s")
    deadlines = sorted(emu.dc.session_expires.values())
    assert deadlines[0] >= 10.0 and deadlines[-1] <= 20.0 and deadlines[0] != deadlines[-1]


def test_session_defaults_and_output_shape() -> None:
    emu = Emu()
    sid = emu.session()
    info = emu.ok("GET", f"/v1/session/info/{sid}").json()
    assert info == [{"ID": sid, "Name": "", "Node": "dc1-server-1", "LockDelay": 15_000_000_000,
                     "Behavior": "release", "TTL": "", "NodeChecks": ["serfHealth"], "ServiceChecks": None,
                     "CreateIndex": emu.dc.sessions[sid].create_index,
                     "ModifyIndex": emu.dc.sessions[sid].create_index}]
    assert emu.ok("GET", "/v1/session/info/nope").json() == []
    pure = emu.session(Checks=[])
    assert emu.ok("GET", f"/v1/session/info/{pure}").json()[0]["NodeChecks"] is None


@pytest.mark.parametrize(("given", "ns"),
                         [("15s", 15e9), (5, 5e9), ("0s", 0), (2_000_000_000, 2e9), ("500ns", 500e9)])
def test_lock_delay_parsing(given: object, ns: float) -> None:
    emu = Emu()
    sid = emu.session(LockDelay=given)
    assert emu.dc.sessions[sid].lock_delay_ns == ns


def test_session_validation_errors() -> None:
    emu = Emu()
    bad = emu.ok("PUT", "/v1/session/create", body={"Behavior": "keep"})
    assert bad.text == "Invalid Behavior setting 'keep'"
    assert emu.ok("PUT", "/v1/session/create", body={"Node": "ghost"}).text == "Missing node registration"
    missing = emu.ok("PUT", "/v1/session/create", body={"Checks": ["nope"]})
    assert missing.text == "Missing check 'nope' registration"
    emu.ok("PUT", "/v1/agent/check/register", body={"Name": "c", "TTL": "5s"})
    r = emu.ok("PUT", "/v1/session/create", body={"Checks": ["c"]})
    assert (r.status, r.text) == (500, "Check 'c' is in critical state")
    assert emu.ok("PUT", "/v1/session/destroy/nope").json() is True


def test_check_going_critical_invalidates_bound_session_and_applies_lock_delay() -> None:
    emu = Emu()
    emu.ok("PUT", "/v1/agent/check/register", body={"Name": "c", "TTL": "3s", "Status": "passing"})
    sid = emu.session(Checks=["serfHealth", "c"], LockDelay="5s")
    assert emu.acquire("k", sid) is True
    emu.ok("PUT", "/v1/agent/check/pass/c", now=2.0)
    emu.dc.advance(4.9)
    assert sid in emu.dc.sessions
    emu.dc.advance(5.0)
    assert sid not in emu.dc.sessions
    entry = emu.entry("k", now=5.0)
    assert entry is not None and "Session" not in entry and entry["LockIndex"] == 1
    other = emu.session(now=5.0, Checks=[])
    assert emu.acquire("k", other, now=9.99) is False
    assert emu.acquire("k", other, now=10.0) is True
    assert emu.entry("k", now=10.0)["LockIndex"] == 2


def test_check_deregistration_invalidates_session() -> None:
    emu = Emu()
    emu.ok("PUT", "/v1/agent/check/register", body={"Name": "c", "TTL": "30s", "Status": "passing"})
    sid = emu.session(Checks=["c"])
    emu.ok("PUT", "/v1/agent/check/deregister/c")
    assert sid not in emu.dc.sessions


def test_behavior_delete_removes_held_keys() -> None:
    emu = Emu()
    sid = emu.session(Behavior="delete", LockDelay="0s")
    emu.acquire("held", sid)
    emu.ok("PUT", "/v1/kv/free", body=b"x")
    emu.ok("PUT", f"/v1/session/destroy/{sid}")
    assert emu.entry("held") is None and emu.entry("free") is not None


# ---- KV locks ---------------------------------------------------------------------------

def test_lock_index_rules() -> None:
    emu = Emu()
    a, b = emu.session(), emu.session()
    assert emu.acquire("k", a, value=b"1") is True
    first = emu.entry("k")
    assert first is not None and first["LockIndex"] == 1 and first["Session"] == a
    assert emu.acquire("k", a, value=b"2") is True
    again = emu.entry("k")
    assert again is not None and again["LockIndex"] == 1
    assert base64.b64decode(str(again["Value"])) == b"2"
    assert again["ModifyIndex"] > first["ModifyIndex"]
    assert emu.acquire("k", b) is False
    r = emu.ok("PUT", "/v1/kv/k", [("release", b)])
    assert r.json() is False
    r = emu.ok("PUT", "/v1/kv/k", [("release", a)])
    assert r.json() is True
    released = emu.entry("k")
    assert released is not None and "Session" not in released and released["LockIndex"] == 1
    assert released["Value"] is None
    assert emu.acquire("k", b) is True
    assert emu.entry("k")["LockIndex"] == 2


def test_release_sets_no_lock_delay_but_destroy_does() -> None:
    emu = Emu()
    a, b = emu.session(), emu.session()
    emu.acquire("k", a)
    emu.ok("PUT", "/v1/kv/k", [("release", a)])
    assert emu.acquire("k", b) is True
    emu.ok("PUT", f"/v1/session/destroy/{b}", now=1.0)
    c = emu.session(now=1.0)
    assert emu.acquire("k", c, now=15.99) is False
    assert emu.acquire("k", c, now=16.0) is True


def test_lock_delay_capped_at_60s() -> None:
    emu = Emu()
    a = emu.session(LockDelay="120s")
    emu.acquire("k", a)
    emu.ok("PUT", f"/v1/session/destroy/{a}")
    b = emu.session()
    assert emu.acquire("k", b, now=59.9) is False
    assert emu.acquire("k", b, now=60.0) is True


def test_invalid_and_missing_session_on_acquire() -> None:
    emu = Emu()
    r = emu.ok("PUT", "/v1/kv/k", [("acquire", "not-a-session")])
    assert (r.status, r.text) == (500, 'invalid session "not-a-session"')
    r = emu.ok("PUT", "/v1/kv/k", [("acquire", "")])
    assert (r.status, r.text) == (500, "missing session")


def test_cas_put_and_delete() -> None:
    emu = Emu()
    assert emu.ok("PUT", "/v1/kv/k", [("cas", "0")], b"a").json() is True
    assert emu.ok("PUT", "/v1/kv/k", [("cas", "0")], b"b").json() is False
    idx = str(emu.entry("k")["ModifyIndex"])
    assert emu.ok("PUT", "/v1/kv/k", [("cas", "1")], b"c").json() is False
    assert emu.ok("PUT", "/v1/kv/k", [("cas", idx)], b"c").json() is True
    assert emu.ok("DELETE", "/v1/kv/k", [("cas", idx)]).json() is False
    idx = str(emu.entry("k")["ModifyIndex"])
    assert emu.ok("DELETE", "/v1/kv/k", [("cas", idx)]).json() is True
    assert emu.entry("k") is None
    r = emu.ok("PUT", "/v1/kv/k", [("cas", "1"), ("acquire", "x")])
    assert r.status == 400 and r.text.startswith("Conflicting flags: ")


def test_get_missing_key_is_404_with_index_and_value_size_limit() -> None:
    emu = Emu()
    emu.ok("PUT", "/v1/kv/a", body=b"x")
    r = emu.ok("GET", "/v1/kv/missing")
    assert r.status == 404 and r.body == b"" and int(r.headers["X-Consul-Index"]) >= 1
    assert emu.ok("PUT", "/v1/kv/big", body=b"x" * 512 * 1024).status == 200
    r = emu.ok("PUT", "/v1/kv/big", body=b"x" * (512 * 1024 + 1))
    assert r.status == 413
    assert r.text.startswith("Request body(524289 bytes) too large, max size: 524288 bytes.")


def test_recurse_keys_separator_raw_and_delete_tree() -> None:
    emu = Emu()
    for k in ("app/a", "app/b/c", "app/b/d", "other"):
        emu.ok("PUT", f"/v1/kv/{k}", body=k.encode())
    r = emu.ok("GET", "/v1/kv/app/", [("recurse", "")])
    assert [e["Key"] for e in r.json()] == ["app/a", "app/b/c", "app/b/d"]
    r = emu.ok("GET", "/v1/kv/app/", [("keys", ""), ("separator", "/")])
    assert r.json() == ["app/a", "app/b/"]
    assert emu.ok("GET", "/v1/kv/other", [("raw", "")]).body == b"other"
    assert emu.ok("GET", "/v1/kv/nope/", [("keys", "")]).status == 404
    assert emu.ok("DELETE", "/v1/kv/app/", [("recurse", "")]).json() is True
    assert emu.ok("GET", "/v1/kv/", [("keys", "")]).json() == ["other"]


# ---- transactions --------------------------------------------------------------------------

def _kv_op(verb: str, key: str, **extra: object) -> dict[str, object]:
    return {"KV": {"Verb": verb, "Key": key, **extra}}


def test_txn_applies_atomically_at_one_index() -> None:
    emu = Emu()
    sid = emu.session()
    ops = [_kv_op("set", "a", Value="YQ=="), _kv_op("lock", "l", Session=sid), _kv_op("get", "a")]
    r = emu.ok("PUT", "/v1/txn", body=ops)
    assert r.status == 200
    body = r.json()
    assert isinstance(body, dict) and body["Errors"] is None
    results = body["Results"]
    assert results[0]["KV"]["Value"] is None and results[2]["KV"]["Value"] == "YQ=="
    assert results[0]["KV"]["ModifyIndex"] == results[1]["KV"]["ModifyIndex"]


def test_txn_conflict_rolls_back_everything() -> None:
    emu = Emu()
    emu.ok("PUT", "/v1/kv/a", body=b"old")
    before = (emu.dc.index, dict(emu.dc.kv.entries), dict(emu.dc.kv.tombstones), emu.dc.kv.table_index)
    ops = [_kv_op("set", "a", Value="bmV3"), _kv_op("delete", "a"), _kv_op("set", "b", Value="eA=="),
           _kv_op("check-index", "a", Index=999)]
    r = emu.ok("PUT", "/v1/txn", body=ops)
    assert r.status == 409
    assert r.json() == {"Results": None, "Errors": [
        {"OpIndex": 3, "What": 'failed to check index, key "a" doesn\'t exist'}]}
    after = (emu.dc.index, dict(emu.dc.kv.entries), dict(emu.dc.kv.tombstones), emu.dc.kv.table_index)
    assert after == before


def test_txn_limits_and_lock_delay_precheck() -> None:
    emu = Emu()
    r = emu.ok("PUT", "/v1/txn", body=[_kv_op("get", f"k{i}") for i in range(65)])
    assert (r.status, r.text) == (413, "Transaction contains too many operations (65 > 64)")
    a = emu.session()
    emu.acquire("l", a)
    emu.ok("PUT", f"/v1/session/destroy/{a}")
    b = emu.session()
    r = emu.ok("PUT", "/v1/txn", body=[_kv_op("lock", "l", Session=b)], now=1.0)
    assert r.status == 409
    assert r.json()["Errors"] == [{"OpIndex": 0, "What": 'failed to lock key "l" due to lock delay'}]


def test_txn_check_session_then_set() -> None:
    emu = Emu()
    a, b = emu.session(), emu.session()
    emu.acquire("l", a)
    ok = emu.ok("PUT", "/v1/txn",
                body=[_kv_op("check-session", "l", Session=a), _kv_op("set", "d", Value="eA==")])
    assert ok.status == 200
    bad = emu.ok("PUT", "/v1/txn",
                 body=[_kv_op("check-session", "l", Session=b), _kv_op("set", "d", Value="eQ==")])
    assert bad.status == 409
    assert base64.b64decode(str(emu.entry("d")["Value"])) == b"x"


# ---- blocking queries, consistency, leader ---------------------------------------------------

def test_blocking_query_blocks_then_wakes_on_change() -> None:
    emu = Emu()
    emu.ok("PUT", "/v1/kv/k", body=b"1")
    index = emu.ok("GET", "/v1/kv/k").headers["X-Consul-Index"]
    out = emu.call("GET", "/v1/kv/k", [("index", index), ("wait", "16s")], now=1.0)
    assert isinstance(out, Block) and 17.0 <= out.wake_at <= 18.0
    again = emu.call("GET", "/v1/kv/k", [("index", index), ("wait", "16s")], now=2.0, resume=out.resume)
    assert again == out
    emu.ok("PUT", "/v1/kv/k", body=b"2", now=3.0)
    reply = emu.ok("GET", "/v1/kv/k", [("index", index), ("wait", "16s")], now=3.0, resume=out.resume)
    assert int(reply.headers["X-Consul-Index"]) > int(index)


def test_blocking_query_returns_same_index_at_deadline_and_index_zero_never_blocks() -> None:
    emu = Emu()
    idx = emu.ok("GET", "/v1/kv/nothing").headers["X-Consul-Index"]
    out = emu.call("GET", "/v1/kv/nothing", [("index", idx), ("wait", "1s")])
    assert isinstance(out, Block)
    reply = emu.ok("GET", "/v1/kv/nothing", [("index", idx), ("wait", "1s")], now=out.wake_at,
                   resume=out.resume)
    assert reply.status == 404 and reply.headers["X-Consul-Index"] == idx
    assert isinstance(emu.call("GET", "/v1/kv/nothing", [("index", "0")]), Reply)
    assert emu.ok("GET", "/v1/kv/x", [("wait", "abc"), ("index", "1")]).text == "Invalid wait time"


def test_wait_is_capped_at_ten_minutes() -> None:
    emu = Emu()
    out = emu.call("GET", "/v1/session/list", [("index", "99"), ("wait", "1h")])
    assert isinstance(out, Block) and 600.0 <= out.wake_at <= 600.0 * (1 + 1 / 16)


def test_leader_loss_500_for_default_and_writes_stale_still_answers() -> None:
    emu = Emu()
    emu.ok("PUT", "/v1/kv/k", body=b"1")
    emu.dc.set_leader(False, 10.0)
    assert emu.ok("GET", "/v1/kv/k", now=11.0).text == "No cluster leader"
    assert emu.ok("GET", "/v1/kv/k", [("consistent", "")], now=11.0).status == 500
    assert emu.ok("PUT", "/v1/kv/k", body=b"2", now=11.0).status == 500
    stale = emu.ok("GET", "/v1/kv/k", [("stale", "")], now=11.5)
    assert stale.status == 200
    assert stale.headers["X-Consul-KnownLeader"] == "false"
    assert stale.headers["X-Consul-LastContact"] == "1500"
    assert stale.headers["X-Consul-Effective-Consistency"] == "stale"
    assert emu.ok("GET", "/v1/status/leader", now=11.0).json() == ""


def test_leader_loss_pauses_session_timers_and_regain_restarts_them() -> None:
    emu = Emu("ttl")
    sid = emu.session(TTL="10s")
    emu.dc.set_leader(False, 5.0)
    emu.dc.advance(50.0)
    assert sid in emu.dc.sessions
    emu.dc.set_leader(True, 50.0)
    emu.dc.advance(59.9)
    assert sid in emu.dc.sessions
    emu.dc.advance(60.0)
    assert sid not in emu.dc.sessions


def test_rpc_hold_blocks_then_fails_or_succeeds() -> None:
    emu = Emu(hold=7.0)
    emu.dc.set_leader(False, 0.0)
    out = emu.call("PUT", "/v1/kv/k", body=b"1", now=1.0)
    assert isinstance(out, Block) and out.wake_at == 8.0
    failed = emu.ok("PUT", "/v1/kv/k", body=b"1", now=8.0, resume=out.resume)
    assert failed.text == "No cluster leader"
    out = emu.call("PUT", "/v1/kv/k", body=b"1", now=9.0)
    assert isinstance(out, Block)
    emu.dc.set_leader(True, 10.0)
    assert emu.ok("PUT", "/v1/kv/k", body=b"1", now=10.0, resume=out.resume).json() is True


# ---- routing, ACL, catalog ------------------------------------------------------------------

def test_dc_param_forwards_or_fails() -> None:
    emu = Emu()
    out = emu.call("GET", "/v1/kv/k", [("dc", "dc2")])
    assert isinstance(out, Forward) and out.dc == "dc2"
    assert emu.ok("GET", "/v1/kv/k", [("dc", "dc9")]).text == "No path to datacenter"
    assert isinstance(emu.call("GET", "/v1/kv/k", [("dc", "dc1")]), Reply)
    fwd = emu.call("PUT", "/v1/session/create", [("dc", "dc2")], {"TTL": "10s"})
    assert isinstance(fwd, Forward)
    assert json.loads(fwd.request.body) == {"TTL": "10s", "Node": "dc1-server-1"}


def test_acl_master_token() -> None:
    emu = Emu(acl="root")
    r = emu.ok("GET", "/v1/kv/k")
    assert (r.status, r.text) == (403, "Permission denied")
    r = emu.ok("GET", "/v1/kv/k", headers={"x-consul-token": "wrong"})
    assert (r.status, r.text) == (403, "ACL not found")
    assert emu.ok("PUT", "/v1/kv/k", body=b"1", headers={"x-consul-token": "root"}).status == 200
    assert emu.ok("GET", "/v1/kv/k", headers={"authorization": "Bearer root"}).status == 200
    assert emu.ok("GET", "/v1/kv/k", [("token", "root")]).status == 200
    assert emu.ok("GET", "/v1/status/leader").status == 200


def test_agent_self_catalog_and_health_shapes() -> None:
    emu = Emu()
    cfg = emu.ok("GET", "/v1/agent/self").json()["Config"]
    assert (cfg["Datacenter"], cfg["NodeName"]) == ("dc1", "dc1-server-1")
    assert emu.ok("GET", "/v1/catalog/datacenters").json() == ["dc1", "dc2"]
    coords = emu.ok("GET", "/v1/coordinate/datacenters").json()
    assert len(coords[0]["Coordinates"][0]["Coord"]["Vec"]) == 8
    emu.ok("PUT", "/v1/agent/service/register", body={"Name": "web", "Check": {"TTL": "10s"}})
    assert emu.ok("GET", "/v1/health/service/web", [("passing", "")]).json() == []
    emu.ok("PUT", "/v1/agent/check/pass/service:web")
    healthy = emu.ok("GET", "/v1/health/service/web", [("passing", "")]).json()
    assert [e["Service"]["ID"] for e in healthy] == ["web"]
    node_checks = emu.ok("GET", "/v1/health/node/dc1-server-1").json()
    statuses = {c["CheckID"]: c["Status"] for c in node_checks}
    assert statuses == {"serfHealth": "passing", "service:web": "passing"}
    r = emu.ok("PUT", "/v1/agent/check/pass/unknown")
    assert (r.status, r.text) == (404, 'Unknown check ID "unknown". Ensure that the check ID is passed, '
                                       "not the check name.")


def test_deregister_critical_service_after() -> None:
    emu = Emu()
    emu.ok("PUT", "/v1/agent/service/register",
           body={"Name": "web", "Check": {"TTL": "5s", "Status": "passing",
                                          "DeregisterCriticalServiceAfter": "10s"}})
    emu.dc.advance(14.9)
    assert "web" in emu.dc.agent.services
    emu.dc.advance(15.0)
    assert "web" not in emu.dc.agent.services
    assert ("dc1-server-1", "web") not in emu.dc.catalog.services
