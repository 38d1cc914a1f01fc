"""Independent-client checks of the Consul emulator, driven through py-consul.

py-consul (PyPI `py-consul`, import `consul`) is a client nobody on this project wrote and
that is used against real Consul, so every flow here checks that the emulator answers the
way Consul's HTTP API does (contract: /work/shared/reference/consul-semantics.md), through
a client whose assumptions are not ours.

The emulator runs as a subprocess (module-scoped fixtures): three DCs on a free port base
with a 1s forward timeout, and a separate one-DC instance in ACL mode. Teardown sends
SIGTERM and requires exit code 0. Tests that cut links or stop the leader restore them in
`finally`, so tests stay order-independent. The `--session-expiry` mode is never relied on:
no test waits for a TTL to run out.

py-consul quirks relied upon (deliberately, since real Consul accepts them):
  * it sends lower-case JSON field names (`ttl`, `lockdelay`, `checks`, `name`, `id`), which
    Consul decodes case-insensitively;
  * it reads CONSUL_HTTP_TOKEN in preference to the `token` argument, so the ACL tests clear
    that variable;
  * a 409 from /v1/txn surfaces as `consul.base.ClientError("409 <body>")`, a 5xx as
    `ConsulException("<code> <body>")`, a 403 as `ACLPermissionDenied(<body>)`.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import consul
import httpx
import pytest
from consul.callback import CB
from consul.exceptions import ClientError
from consul.std import parse_duration
from emu_helpers import EmulatorProcess, free_port_base, start_emulator

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

DCS = ("dc1", "dc2", "dc3")
ACL_TOKEN = "emu-master-" + uuid.uuid4().hex[:12]


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorProcess]:
    base = free_port_base(len(DCS))
    proc = start_emulator(
        DCS, http_port=base, extra_args=["--forward-timeout", "1", "--seed", "7", "--session-expiry", "ttl"]
    )
    try:
        yield proc
    finally:
        code = proc.stop()
        assert code == 0, f"emulator exit code {code} after SIGTERM\n{proc.stderr_tail()}"


@pytest.fixture(scope="module")
def acl_emu() -> Iterator[EmulatorProcess]:
    proc = start_emulator(["dc1"], http_port=0, extra_args=["--acl-master-token", ACL_TOKEN])
    try:
        yield proc
    finally:
        code = proc.stop()
        assert code == 0, f"ACL emulator exit code {code} after SIGTERM\n{proc.stderr_tail()}"


@pytest.fixture(autouse=True)
def _no_consul_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CONSUL_HTTP_ADDR", "CONSUL_HTTP_TOKEN", "CONSUL_HTTP_SSL", "CONSUL_HTTP_SSL_VERIFY"):
        monkeypatch.delenv(name, raising=False)


ClientFactory = Callable[..., consul.Consul]


@pytest.fixture
def client_for(emu: EmulatorProcess) -> ClientFactory:
    """`client_for("dc2", **kw)` -> a py-consul client talking to dc2's own HTTP port."""

    def make(dc: str = "dc1", **kwargs: Any) -> consul.Consul:
        host, port = emu.host_port(dc)
        kwargs.setdefault("connections_timeout", 15)
        return consul.Consul(host=host, port=port, **kwargs)

    return make


@pytest.fixture
def c(client_for: ClientFactory) -> consul.Consul:
    return client_for("dc1")


def key(name: str) -> str:
    """A key unique to this test run, so tests never see each other's data."""
    return f"t-{uuid.uuid4().hex[:10]}/{name}"


def control(emu: EmulatorProcess, path: str, dc: str = "dc1") -> httpx.Response:
    """PUT/GET on the emulator's fault-control API (not part of Consul)."""
    url = emu.urls[dc] + path
    method = "GET" if path.endswith("/state") else "PUT"
    resp = httpx.request(method, url, timeout=10)
    assert resp.status_code == 200, f"{method} {path} -> {resp.status_code} {resp.text}"
    return resp


def new_session(c: consul.Consul, **kwargs: Any) -> str:
    kwargs.setdefault("checks", [])
    kwargs.setdefault("lock_delay", 0)
    sid = c.session.create(**kwargs)
    assert isinstance(sid, str)
    assert uuid.UUID(sid)
    return sid


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# ---------------------------------------------------------------- startup contract


def test_startup_line_maps_dc_k_to_port_base_plus_k(emu: EmulatorProcess) -> None:
    ports = [emu.host_port(dc)[1] for dc in DCS]
    assert ports == [ports[0] + k for k in range(len(DCS))]
    assert all(emu.host_port(dc)[0] == "127.0.0.1" for dc in DCS)


def test_emulator_state_endpoint_answers_json(emu: EmulatorProcess) -> None:
    resp = control(emu, "/_emulator/state")
    assert isinstance(resp.json(), dict)


# ---------------------------------------------------------------- agent, catalog, status


def test_agent_self_reports_each_dc(client_for: ClientFactory) -> None:
    for dc in DCS:
        me = client_for(dc).agent.self()
        assert me["Config"]["Datacenter"] == dc
        assert me["Config"]["NodeName"]
        assert "Member" in me


def test_catalog_datacenters_lists_all(client_for: ClientFactory) -> None:
    for dc in DCS:
        dcs = client_for(dc).catalog.datacenters()
        assert sorted(dcs) == sorted(DCS)


def test_catalog_nodes_contains_agent_node(c: consul.Consul) -> None:
    node = c.agent.self()["Config"]["NodeName"]
    index, nodes = c.catalog.nodes()
    assert int(index) > 0
    assert node in {n["Node"] for n in nodes}
    assert all("Address" in n for n in nodes)


def test_status_leader_is_host_port(c: consul.Consul) -> None:
    leader = c.status.leader()
    assert isinstance(leader, str)
    host, _, port = leader.rpartition(":")
    assert host and port.isdigit()


# ---------------------------------------------------------------- sessions


def test_session_create_info_list_renew_destroy(c: consul.Consul) -> None:
    node = c.agent.self()["Config"]["NodeName"]
    sid = c.session.create(name="emu-s", ttl=10, behavior="delete", lock_delay=3, checks=[])
    assert isinstance(sid, str)

    index, info = c.session.info(sid)
    assert int(index) > 0
    assert info is not None
    assert info["ID"] == sid
    assert info["Name"] == "emu-s"
    assert info["Node"] == node
    assert info["Behavior"] == "delete"
    assert info["TTL"] == "10s"
    assert info["LockDelay"] == 3_000_000_000, "LockDelay is a Go duration in nanoseconds"
    checks = (info.get("NodeChecks") or []) + (info.get("Checks") or [])
    assert "serfHealth" not in checks, "checks=[] must give a pure TTL session"
    assert int(info["CreateIndex"]) > 0

    _, sessions = c.session.list()
    assert sid in {s["ID"] for s in sessions}
    _, on_node = c.session.node(node)
    assert sid in {s["ID"] for s in on_node}

    renewed = c.session.renew(sid)
    assert renewed["ID"] == sid
    assert parse_duration(renewed["TTL"]) >= 10

    assert c.session.destroy(sid) is True
    _, gone = c.session.info(sid)
    assert gone is None
    _, sessions = c.session.list()
    assert sid not in {s["ID"] for s in sessions}
    with pytest.raises(consul.NotFound) as err:
        c.session.renew(sid)
    assert str(err.value) == f"Session id '{sid}' not found"
    assert c.session.destroy(sid) is True, "destroy is idempotent"


def test_session_defaults_release_15s_serfhealth(c: consul.Consul) -> None:
    sid = c.session.create()
    try:
        _, info = c.session.info(sid)
        assert info["Behavior"] == "release"
        assert info["LockDelay"] == 15_000_000_000
        assert info["TTL"] in ("", None)
        checks = (info.get("NodeChecks") or []) + (info.get("Checks") or [])
        assert "serfHealth" in checks
    finally:
        c.session.destroy(sid)


def test_session_create_rejects_bad_ttl(c: consul.Consul) -> None:
    cb = CB.json(is_id=True)
    with pytest.raises(consul.ConsulException) as err:
        c.http.put(cb, "/v1/session/create", data=json.dumps({"TTL": "5s", "Checks": []}))
    assert str(err.value) == "500 Invalid Session TTL '5000000000', must be between [10s=24h0m0s]"


def test_session_create_rejects_bad_behavior(c: consul.Consul) -> None:
    with pytest.raises(consul.ConsulException) as err:
        c.http.put(CB.json(is_id=True), "/v1/session/create", data=json.dumps({"Behavior": "foo"}))
    assert str(err.value) == "500 Invalid Behavior setting 'foo'"


def test_session_ttl_expiry_releases_its_lock(c: consul.Consul, client_for: ClientFactory) -> None:
    """Runs ~10s: the emulator fixture uses --session-expiry ttl (the earliest Consul allows)."""
    k = key("ttl-lock")
    sid = c.session.create(ttl=10, lock_delay=0, checks=[])
    assert c.kv.put(k, "v", acquire=sid) is True
    renewed = c.session.renew(sid)
    assert renewed["ID"] == sid
    index, info = c.session.info(sid)
    assert info is not None, "a TTL session is alive right after a renew"
    deadline = time.monotonic() + 30
    while info is not None and time.monotonic() < deadline:
        index, info = c.session.info(sid, index=index, wait="5s")
    assert info is None, "a 10s TTL session without renewals must expire (bounded wait 30s)"
    _, entry = c.kv.get(k)
    assert entry.get("Session") in (None, ""), "TTL expiry releases the lock (behavior release)"
    assert entry["Value"] == b"v"
    with pytest.raises(consul.NotFound):
        c.session.renew(sid)


def test_session_create_rejects_unknown_check(c: consul.Consul) -> None:
    with pytest.raises(consul.ConsulException) as err:
        c.session.create(checks=["no-such-check-" + uuid.uuid4().hex[:6]])
    assert "Missing check" in str(err.value)


def test_session_for_unregistered_node_is_refused(c: consul.Consul) -> None:
    with pytest.raises(consul.ConsulException) as err:
        c.session.create(node="ghost-" + uuid.uuid4().hex[:6], checks=[])
    assert "Missing node registration" in str(err.value)


def test_session_behavior_release_vs_delete(c: consul.Consul) -> None:
    k_rel, k_del = key("rel"), key("del")
    s_rel = new_session(c, behavior="release")
    s_del = new_session(c, behavior="delete")
    assert c.kv.put(k_rel, "r", acquire=s_rel) is True
    assert c.kv.put(k_del, "d", acquire=s_del) is True
    _, before = c.kv.get(k_rel)

    assert c.session.destroy(s_rel) is True
    assert c.session.destroy(s_del) is True

    _, after = c.kv.get(k_rel)
    assert after is not None, "release behaviour keeps the key"
    assert after.get("Session") in (None, "")
    assert after["Value"] == b"r"
    assert after["LockIndex"] == before["LockIndex"]
    assert after["ModifyIndex"] > before["ModifyIndex"]
    _, deleted = c.kv.get(k_del)
    assert deleted is None, "delete behaviour removes the key"


# ---------------------------------------------------------------- KV basics


def test_kv_put_get_delete_flags_and_null_value(c: consul.Consul) -> None:
    k = key("a")
    _, missing = c.kv.get(k)
    assert missing is None
    assert c.kv.put(k, "hello", flags=42) is True
    index, entry = c.kv.get(k)
    assert entry["Key"] == k
    assert entry["Value"] == b"hello"
    assert entry["Flags"] == 42
    assert entry["LockIndex"] == 0
    assert entry["CreateIndex"] == entry["ModifyIndex"] > 0
    assert int(index) >= entry["ModifyIndex"]

    assert c.kv.put(k, b"\x00\xffbin") is True
    _, entry2 = c.kv.get(k)
    assert entry2["Value"] == b"\x00\xffbin"
    assert entry2["CreateIndex"] == entry["CreateIndex"]
    assert entry2["ModifyIndex"] > entry["ModifyIndex"]

    k_none = key("dir")
    assert c.kv.put(k_none, None) is True
    _, entry3 = c.kv.get(k_none)
    assert entry3 is not None
    assert entry3["Value"] is None

    assert c.kv.delete(k) is True
    _, gone = c.kv.get(k)
    assert gone is None
    assert c.kv.delete(k) is True, "deleting a missing key is not an error"


def test_kv_cas(c: consul.Consul) -> None:
    k = key("cas")
    assert c.kv.put(k, "v1", cas=0) is True, "cas=0 creates an absent key"
    assert c.kv.put(k, "v2", cas=0) is False, "cas=0 refuses an existing key"
    _, entry = c.kv.get(k)
    assert entry["Value"] == b"v1"
    mi = entry["ModifyIndex"]
    assert c.kv.put(k, "v3", cas=mi + 1000) is False
    assert c.kv.put(k, "v3", cas=mi) is True
    assert c.kv.put(k, "v4", cas=mi) is False, "the old index is stale now"
    _, entry = c.kv.get(k)
    assert entry["Value"] == b"v3"

    assert c.kv.delete(k, cas=0) is False, "DELETE ?cas=0 never deletes an existing key"
    assert c.kv.delete(k, cas=entry["ModifyIndex"] + 1000) is False
    _, still = c.kv.get(k)
    assert still is not None
    assert c.kv.delete(k, cas=entry["ModifyIndex"]) is True
    _, gone = c.kv.get(k)
    assert gone is None


def test_kv_recurse_keys_separator_and_recursive_delete(c: consul.Consul) -> None:
    root = key("tree").rsplit("/", 1)[0] + "/"
    for sub in ("a", "b/c", "b/d", "e", "b/x/y"):
        assert c.kv.put(root + sub, sub) is True
    # A sibling that shares the string prefix but not the directory.
    assert c.kv.put(root.rstrip("/") + "-sibling", "s") is True

    _, entries = c.kv.get(root, recurse=True)
    got = [e["Key"] for e in entries]
    assert got == sorted(root + s for s in ("a", "b/c", "b/d", "e", "b/x/y"))
    assert {e["Key"]: e["Value"] for e in entries}[root + "b/c"] == b"b/c"

    _, keys = c.kv.get(root, keys=True)
    assert keys == sorted(root + s for s in ("a", "b/c", "b/d", "e", "b/x/y"))

    _, shallow = c.kv.get(root, keys=True, separator="/")
    assert shallow == [root + "a", root + "b/", root + "e"]

    _, none_there = c.kv.get(root + "zzz/", recurse=True)
    assert none_there is None, "an empty prefix is a 404"

    assert c.kv.delete(root + "b/", recurse=True) is True
    _, keys = c.kv.get(root, keys=True)
    assert keys == [root + "a", root + "e"]
    _, sib = c.kv.get(root.rstrip("/") + "-sibling")
    assert sib is not None


# ---------------------------------------------------------------- locks


def test_acquire_release_and_lock_index(c: consul.Consul) -> None:
    k = key("lock")
    s1, s2 = new_session(c), new_session(c)
    try:
        assert c.kv.put(k, "one", acquire=s1) is True
        _, e1 = c.kv.get(k)
        assert e1["Session"] == s1
        assert e1["LockIndex"] == 1

        assert c.kv.put(k, "one-again", acquire=s1) is True, "the holder may re-acquire"
        _, e2 = c.kv.get(k)
        assert e2["LockIndex"] == 1, "re-acquire by the holder keeps LockIndex"
        assert e2["Value"] == b"one-again"
        assert e2["ModifyIndex"] > e1["ModifyIndex"]

        assert c.kv.put(k, "two", acquire=s2) is False, "held by another session"
        assert c.kv.put(k, "two", release=s2) is False, "only the holder can release"
        _, e3 = c.kv.get(k)
        assert e3["Session"] == s1
        assert e3["Value"] == b"one-again"

        assert c.kv.put(k, "plain") is True, "a plain PUT ignores the advisory lock"
        _, e4 = c.kv.get(k)
        assert e4["Session"] == s1
        assert e4["Value"] == b"plain"
        assert e4["LockIndex"] == 0, "kvsSetTxn stores the PUT's LockIndex (0), keeps Session"

        assert c.kv.put(k, "again", acquire=s1) is True
        _, e4b = c.kv.get(k)
        assert e4b["LockIndex"] == 0, "the holder re-acquiring keeps LockIndex, even 0"

        assert c.kv.put(k, "released", release=s1) is True
        _, e5 = c.kv.get(k)
        assert e5.get("Session") in (None, "")
        assert e5["LockIndex"] == 0, "release keeps LockIndex"
        assert e5["ModifyIndex"] > e4b["ModifyIndex"]

        # An explicit release arms no lock-delay, even with the default 15s: s2 gets it now.
        assert c.kv.put(k, "two", acquire=s2) is True
        _, e6 = c.kv.get(k)
        assert e6["Session"] == s2
        assert e6["LockIndex"] == 1, "a new acquisition bumps LockIndex"
    finally:
        c.session.destroy(s1)
        c.session.destroy(s2)


def test_acquire_with_unknown_session_is_an_error(c: consul.Consul) -> None:
    bogus = str(uuid.uuid4())
    with pytest.raises(consul.ConsulException) as err:
        c.kv.put(key("x"), "v", acquire=bogus)
    assert str(err.value).startswith("500 ")
    assert "invalid session" in str(err.value)
    assert bogus in str(err.value)


def test_lock_delay_blocks_reacquire_after_invalidation(c: consul.Consul) -> None:
    k = key("delayed")
    holder = new_session(c, lock_delay=10)
    contender = new_session(c)
    try:
        assert c.kv.put(k, "h", acquire=holder) is True
        assert c.session.destroy(holder) is True
        _, entry = c.kv.get(k)
        assert entry.get("Session") in (None, "")
        assert c.kv.put(k, "c", acquire=contender) is False, "inside lock-delay: false, not an error"
        _, entry = c.kv.get(k)
        assert entry.get("Session") in (None, "")
        assert entry["Value"] == b"h"
    finally:
        c.session.destroy(contender)


def test_lock_delay_zero_allows_immediate_reacquire(c: consul.Consul) -> None:
    k = key("nodelay")
    holder = new_session(c, lock_delay=0)
    contender = new_session(c)
    try:
        assert c.kv.put(k, "h", acquire=holder) is True
        assert c.session.destroy(holder) is True
        assert c.kv.put(k, "c", acquire=contender) is True
        _, entry = c.kv.get(k)
        assert entry["Session"] == contender
        assert entry["LockIndex"] == 2
    finally:
        c.session.destroy(contender)


def test_lock_delay_expires(c: consul.Consul) -> None:
    k = key("shortdelay")
    holder = new_session(c, lock_delay=1)
    contender = new_session(c)
    try:
        assert c.kv.put(k, "h", acquire=holder) is True
        assert c.session.destroy(holder) is True
        assert c.kv.put(k, "c", acquire=contender) is False
        deadline = time.monotonic() + 10
        acquired = False
        while not acquired and time.monotonic() < deadline:
            time.sleep(0.25)
            acquired = c.kv.put(k, "c", acquire=contender)
        assert acquired, "a 1s lock-delay must end (bounded poll of 10s)"
    finally:
        c.session.destroy(contender)


# ---------------------------------------------------------------- blocking queries


def test_blocking_get_wakes_on_write_from_another_thread(c: consul.Consul, client_for: ClientFactory) -> None:
    k = key("watched")
    assert c.kv.put(k, "v0") is True
    index, entry = c.kv.get(k)
    result: dict[str, Any] = {}

    def watch() -> None:
        try:
            result["value"] = client_for("dc1").kv.get(k, index=index, wait="30s")
        except Exception as exc:
            result["error"] = exc

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    time.sleep(0.3)
    assert t.is_alive(), "the blocking GET returned before any write"
    assert client_for("dc1").kv.put(k, "v1") is True
    t.join(timeout=20)
    assert not t.is_alive(), "watcher did not return after the write"
    assert "error" not in result, result.get("error")
    new_index, new_entry = result["value"]
    assert int(new_index) > int(index)
    assert new_entry["Value"] == b"v1"
    assert new_entry["ModifyIndex"] > entry["ModifyIndex"]


def test_blocking_get_times_out_with_same_index(c: consul.Consul) -> None:
    k = key("quiet")
    assert c.kv.put(k, "still") is True
    index, _ = c.kv.get(k)
    new_index, entry = c.kv.get(k, index=index, wait="1s")
    assert int(new_index) == int(index)
    assert entry["Value"] == b"still"


def test_blocking_get_is_not_woken_by_a_write_to_another_key(
    c: consul.Consul, client_for: ClientFactory
) -> None:
    """Consul watches only the key's own radix node (state/kvs.go kvsGetTxn: ws.Add(watchCh)),
    and on timeout returns the result computed before it blocked (blocking.go), so a write to
    another key during the wait leaves the returned index unchanged."""
    k, other = key("mine"), key("other")
    assert c.kv.put(k, "stable") is True
    assert c.kv.put(other, "o0") is True
    index, _ = c.kv.get(k)

    def write_other() -> None:
        time.sleep(0.3)
        client_for("dc1").kv.put(other, "o1")

    t = threading.Thread(target=write_other, daemon=True)
    t.start()
    new_index, entry = c.kv.get(k, index=index, wait="2s")
    t.join(timeout=10)
    assert entry["Value"] == b"stable"
    assert int(new_index) == int(index), "woken (and index moved) by a write to a different key"


def test_blocking_get_on_missing_key_wakes_on_create(c: consul.Consul, client_for: ClientFactory) -> None:
    k = key("born")
    index, entry = c.kv.get(k)
    assert entry is None
    result: dict[str, Any] = {}

    def watch() -> None:
        result["value"] = client_for("dc1").kv.get(k, index=index, wait="30s")

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    time.sleep(0.3)
    assert c.kv.put(k, "here") is True
    t.join(timeout=20)
    assert not t.is_alive()
    new_index, new_entry = result["value"]
    assert int(new_index) > int(index)
    assert new_entry["Value"] == b"here"


def test_index_zero_does_not_block_and_header_never_zero(c: consul.Consul) -> None:
    k = key("missing")
    index, entry = c.kv.get(k)
    assert entry is None
    assert int(index) >= 1, "X-Consul-Index is never 0, even on a 404"


def test_blocking_session_info_wakes_on_destroy(c: consul.Consul, client_for: ClientFactory) -> None:
    sid = new_session(c)
    index, info = c.session.info(sid)
    assert info is not None
    result: dict[str, Any] = {}

    def watch() -> None:
        result["value"] = client_for("dc1").session.info(sid, index=index, wait="30s")

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    time.sleep(0.3)
    assert c.session.destroy(sid) is True
    t.join(timeout=20)
    assert not t.is_alive()
    new_index, gone = result["value"]
    assert int(new_index) > int(index)
    assert gone is None


# ---------------------------------------------------------------- transactions


def test_txn_success(c: consul.Consul) -> None:
    ka, kb = key("ta"), key("tb")
    sid = new_session(c)
    try:
        res = c.txn.put(
            [
                {"KV": {"Verb": "set", "Key": ka, "Value": b64(b"A")}},
                {"KV": {"Verb": "lock", "Key": kb, "Value": b64(b"B"), "Session": sid}},
                {"KV": {"Verb": "get", "Key": ka}},
            ]
        )
        assert res["Errors"] is None
        assert len(res["Results"]) == 3
        got = res["Results"][2]["KV"]
        assert got["Key"] == ka
        assert base64.b64decode(got["Value"]) == b"A"
        _, eb = c.kv.get(kb)
        assert eb["Session"] == sid
        assert eb["LockIndex"] == 1
        assert eb["Value"] == b"B"

        # "Write only while I still hold the lock".
        res = c.txn.put(
            [
                {"KV": {"Verb": "check-session", "Key": kb, "Session": sid}},
                {"KV": {"Verb": "set", "Key": ka, "Value": b64(b"A2")}},
            ]
        )
        assert res["Errors"] is None
        _, ea = c.kv.get(ka)
        assert ea["Value"] == b"A2"
    finally:
        c.session.destroy(sid)


def test_txn_get_tree_reads_a_key_in_the_same_snapshot_or_nothing(c: consul.Consul) -> None:
    """The coordinator's round txn: check-session + set + get-tree of one key. A missing key
    adds no result (the txn still applies); a present one adds it with its value."""
    lock, row, fence = key("rl"), key("rr"), key("rf")
    sid = new_session(c)
    try:
        assert c.kv.put(lock, "", acquire=sid) is True
        ops = [
            {"KV": {"Verb": "check-session", "Key": lock, "Session": sid}},
            {"KV": {"Verb": "set", "Key": row, "Value": b64(b"row")}},
            {"KV": {"Verb": "get-tree", "Key": fence}},
        ]
        res = c.txn.put(ops)
        assert res["Errors"] is None
        assert [r["KV"]["Key"] for r in res["Results"]] == [lock, row]
        assert all(r["KV"]["Value"] is None for r in res["Results"])
        assert c.kv.put(fence, "on") is True
        res = c.txn.put(ops)
        assert [r["KV"]["Key"] for r in res["Results"]] == [lock, row, fence]
        assert base64.b64decode(res["Results"][2]["KV"]["Value"]) == b"on"
    finally:
        c.session.destroy(sid)


def _txn_conflict(exc: ClientError) -> dict[str, Any]:
    text = str(exc)
    assert text.startswith("409 "), text
    body = json.loads(text[4:])
    assert isinstance(body, dict)
    return body


def test_txn_conflict_rolls_back(c: consul.Consul) -> None:
    ka, kb = key("ra"), key("rb")
    assert c.kv.put(ka, "orig") is True
    _, ea = c.kv.get(ka)
    with pytest.raises(ClientError) as err:
        c.txn.put(
            [
                {"KV": {"Verb": "set", "Key": kb, "Value": b64(b"should-not-exist")}},
                {"KV": {"Verb": "check-index", "Key": ka, "Index": ea["ModifyIndex"] + 999}},
                {"KV": {"Verb": "set", "Key": ka, "Value": b64(b"changed")}},
            ]
        )
    body = _txn_conflict(err.value)
    assert body["Results"] is None
    assert [e["OpIndex"] for e in body["Errors"]] == [1]
    assert body["Errors"][0]["What"]
    _, eb = c.kv.get(kb)
    assert eb is None, "op 0 must be rolled back"
    _, ea2 = c.kv.get(ka)
    assert ea2["Value"] == b"orig"
    assert ea2["ModifyIndex"] == ea["ModifyIndex"]


def test_txn_check_session_by_non_holder_conflicts(c: consul.Consul) -> None:
    k, kw = key("held"), key("guarded")
    holder, other = new_session(c), new_session(c)
    try:
        assert c.kv.put(k, "x", acquire=holder) is True
        with pytest.raises(ClientError) as err:
            c.txn.put(
                [
                    {"KV": {"Verb": "check-session", "Key": k, "Session": other}},
                    {"KV": {"Verb": "set", "Key": kw, "Value": b64(b"nope")}},
                ]
            )
        body = _txn_conflict(err.value)
        assert body["Errors"][0]["OpIndex"] == 0
        _, ew = c.kv.get(kw)
        assert ew is None
    finally:
        c.session.destroy(holder)
        c.session.destroy(other)


def test_txn_get_missing_key_conflicts_but_get_or_empty_does_not(c: consul.Consul) -> None:
    k = key("absent")
    with pytest.raises(ClientError) as err:
        c.txn.put([{"KV": {"Verb": "get", "Key": k}}])
    body = _txn_conflict(err.value)
    assert body["Errors"] == [{"OpIndex": 0, "What": f'key "{k}" doesn\'t exist'}]
    res = c.txn.put([{"KV": {"Verb": "get-or-empty", "Key": k}}])
    assert res["Errors"] is None


def test_txn_more_than_64_ops_is_413(c: consul.Consul) -> None:
    ops = [{"KV": {"Verb": "get-or-empty", "Key": key(f"op{i}")}} for i in range(65)]
    with pytest.raises(ClientError) as err:
        c.txn.put(ops)
    assert str(err.value) == "413 Transaction contains too many operations (65 > 64)"


def test_kv_value_over_512kib_is_413(c: consul.Consul) -> None:
    k = key("big")
    assert c.kv.put(k, b"x" * 512 * 1024) is True, "exactly 512 KiB is allowed"
    with pytest.raises(ClientError) as err:
        c.kv.put(k, b"x" * (512 * 1024 + 1))
    assert str(err.value).startswith("413 ")


def test_txn_check_not_exists_and_delete_cas(c: consul.Consul) -> None:
    k = key("cne")
    res = c.txn.put(
        [
            {"KV": {"Verb": "check-not-exists", "Key": k}},
            {"KV": {"Verb": "set", "Key": k, "Value": b64(b"1")}},
        ]
    )
    assert res["Errors"] is None
    _, e = c.kv.get(k)
    with pytest.raises(ClientError):
        c.txn.put([{"KV": {"Verb": "check-not-exists", "Key": k}}])
    with pytest.raises(ClientError):
        c.txn.put([{"KV": {"Verb": "delete-cas", "Key": k, "Index": e["ModifyIndex"] + 5}}])
    res = c.txn.put([{"KV": {"Verb": "delete-cas", "Key": k, "Index": e["ModifyIndex"]}}])
    assert res["Errors"] is None
    _, gone = c.kv.get(k)
    assert gone is None


# ---------------------------------------------------------------- agent checks and health


def _check_status(c: consul.Consul, node: str, check_id: str) -> str | None:
    _, checks = c.health.node(node)
    for chk in checks:
        if chk["CheckID"] == check_id:
            return str(chk["Status"])
    return None


def test_agent_ttl_check_register_pass_fail_and_session_binding(c: consul.Consul) -> None:
    node = c.agent.self()["Config"]["NodeName"]
    check_id = "emu-ttl-" + uuid.uuid4().hex[:8]
    assert c.agent.check.register("emu ttl check", check=consul.Check.ttl("30s"), check_id=check_id) is True
    try:
        local = c.agent.checks()
        assert check_id in local
        assert local[check_id]["Status"] == "critical", "a new TTL check starts critical"
        assert _check_status(c, node, check_id) == "critical"

        with pytest.raises(consul.ConsulException) as err:
            c.session.create(checks=[check_id], lock_delay=0)
        assert "critical state" in str(err.value)

        assert c.agent.check.ttl_pass(check_id, notes="ok") is True
        assert c.agent.checks()[check_id]["Status"] == "passing"
        assert _check_status(c, node, check_id) == "passing"
        _, passing = c.health.state("passing")
        assert check_id in {chk["CheckID"] for chk in passing}

        sid = c.session.create(checks=[check_id], lock_delay=0)
        k = key("bound")
        assert c.kv.put(k, "v", acquire=sid) is True

        assert c.agent.check.ttl_warn(check_id) is True
        assert c.agent.checks()[check_id]["Status"] == "warning"
        _, still = c.session.info(sid)
        assert still is not None, "warning does not invalidate a session"

        assert c.agent.check.ttl_fail(check_id, notes="dead") is True
        assert c.agent.checks()[check_id]["Status"] == "critical"
        _, critical = c.health.state("critical")
        assert check_id in {chk["CheckID"] for chk in critical}
        _, gone = c.session.info(sid)
        assert gone is None, "a critical check invalidates its sessions at once"
        _, entry = c.kv.get(k)
        assert entry.get("Session") in (None, ""), "the lock is released with the session"
    finally:
        assert c.agent.check.deregister(check_id) is True
    assert check_id not in c.agent.checks()


def test_deregistering_a_check_invalidates_its_session(c: consul.Consul) -> None:
    check_id = "emu-dereg-" + uuid.uuid4().hex[:8]
    assert c.agent.check.register("dereg", check=consul.Check.ttl("30s"), check_id=check_id) is True
    assert c.agent.check.ttl_pass(check_id) is True
    sid = c.session.create(checks=[check_id], lock_delay=0)
    assert c.agent.check.deregister(check_id) is True
    _, gone = c.session.info(sid)
    assert gone is None


# ---------------------------------------------------------------- cross-DC


def test_cross_dc_reads_and_writes_go_to_the_named_dc(client_for: ClientFactory) -> None:
    c1, c2, c3 = (client_for(dc) for dc in DCS)
    k = key("xdc")
    assert c1.kv.put(k, "in-dc2", dc="dc2") is True
    _, local2 = c2.kv.get(k)
    assert local2["Value"] == b"in-dc2"
    _, local1 = c1.kv.get(k)
    assert local1 is None, "each DC has its own KV: nothing replicates"
    _, via1 = c1.kv.get(k, dc="dc2")
    assert via1["Value"] == b"in-dc2"
    _, via3 = c3.kv.get(k, dc="dc2")
    assert via3["ModifyIndex"] == local2["ModifyIndex"]
    assert c1.agent.self()["Config"]["Datacenter"] == "dc1"


def test_cross_dc_blocking_get_wakes_on_remote_write(client_for: ClientFactory) -> None:
    c1, c2 = client_for("dc1"), client_for("dc2")
    k = key("remote-watch")
    assert c2.kv.put(k, "r0") is True
    index, _ = c1.kv.get(k, dc="dc2")
    result: dict[str, Any] = {}

    def watch() -> None:
        result["value"] = client_for("dc1").kv.get(k, dc="dc2", index=index, wait="30s")

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    time.sleep(0.3)
    assert c2.kv.put(k, "r1") is True
    t.join(timeout=20)
    assert not t.is_alive(), "a blocking ?dc= read did not return after the remote write"
    new_index, entry = result["value"]
    assert int(new_index) > int(index)
    assert entry["Value"] == b"r1"


def test_wan_members_list_every_dc_server(c: consul.Consul) -> None:
    members = c.agent.members(wan=True)
    by_dc = {m["Tags"]["dc"]: m for m in members}
    assert sorted(by_dc) == sorted(DCS)
    for dc, m in by_dc.items():
        assert m["Name"].endswith("." + dc)
        assert m["Status"] == 1, f"{dc} should be alive"
        assert m["Tags"]["role"] == "consul"


def test_cross_dc_session_for_foreign_node_is_refused(client_for: ClientFactory) -> None:
    c1 = client_for("dc1")
    my_node = c1.agent.self()["Config"]["NodeName"]
    _, dc2_nodes = c1.catalog.nodes(dc="dc2")
    if my_node in {n["Node"] for n in dc2_nodes}:
        pytest.skip(f"node name {my_node!r} is also registered in dc2 (legal in Consul)")
    with pytest.raises(consul.ConsulException) as err:
        c1.session.create(dc="dc2", checks=[])
    assert "Missing node registration" in str(err.value)


def test_unknown_dc_is_no_path(c: consul.Consul) -> None:
    with pytest.raises(consul.ConsulException) as err:
        c.kv.get(key("x"), dc="dc-nowhere")
    assert str(err.value).startswith("500 ")
    assert "No path to datacenter" in str(err.value)


def test_link_cut_breaks_forwarding_only_on_that_link(
    emu: EmulatorProcess, client_for: ClientFactory
) -> None:
    c1, c2, c3 = (client_for(dc) for dc in DCS)
    k = key("cut")
    assert c2.kv.put(k, "v") is True
    try:
        control(emu, "/_emulator/link/dc1/dc2?state=down")
        with pytest.raises(consul.ConsulException) as err:
            c1.kv.get(k, dc="dc2")
        assert str(err.value).startswith("500 "), str(err.value)
        _, local = c2.kv.get(k)
        assert local["Value"] == b"v", "dc2 itself keeps working"
        _, via3 = c3.kv.get(k, dc="dc2")
        assert via3["Value"] == b"v", "dc3 -> dc2 is a different link"
        assert c1.kv.put(key("local"), "still-ok") is True, "dc1's own KV keeps working"
        assert "dc2" in c1.catalog.datacenters(), "a cut DC stays listed (not a reachability test)"
    finally:
        control(emu, "/_emulator/heal")
    _, healed = c1.kv.get(k, dc="dc2")
    assert healed["Value"] == b"v"


def test_status_leader_empty_and_stale_reads_without_leader(
    emu: EmulatorProcess, client_for: ClientFactory
) -> None:
    c3 = client_for("dc3")
    k = key("noleader")
    assert c3.kv.put(k, "kept") is True
    try:
        control(emu, "/_emulator/leader?state=down", dc="dc3")
        assert c3.status.leader() == ""
        _, entry = c3.kv.get(k, consistency="stale")
        assert entry["Value"] == b"kept", "?stale works with no leader"
        with pytest.raises(consul.ConsulException) as err:
            c3.kv.put(k, "lost")
        assert "No cluster leader" in str(err.value)
        with pytest.raises(consul.ConsulException) as err:
            c3.kv.get(k, consistency="consistent")
        assert "No cluster leader" in str(err.value)
    finally:
        control(emu, "/_emulator/leader?state=up", dc="dc3")
    deadline = time.monotonic() + 15
    while c3.status.leader() == "" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert c3.status.leader() != "", "no leader 15s after leader=up"
    _, entry = c3.kv.get(k, consistency="consistent")
    assert entry["Value"] == b"kept"


# ---------------------------------------------------------------- ACL mode


def _acl_client(acl_emu: EmulatorProcess, token: str | None) -> consul.Consul:
    host, port = acl_emu.host_port("dc1")
    return consul.Consul(host=host, port=port, token=token, connections_timeout=15)


def test_acl_without_token_is_denied(acl_emu: EmulatorProcess) -> None:
    anon = _acl_client(acl_emu, None)
    with pytest.raises(consul.ACLPermissionDenied):
        anon.kv.put(key("acl"), "v")
    with pytest.raises(consul.ACLPermissionDenied):
        anon.kv.get(key("acl"))
    with pytest.raises(consul.ACLPermissionDenied):
        anon.session.create(checks=[])


def test_acl_wrong_token_is_acl_not_found(acl_emu: EmulatorProcess) -> None:
    wrong = _acl_client(acl_emu, str(uuid.uuid4()))
    with pytest.raises(consul.ACLPermissionDenied) as err:
        wrong.kv.put(key("acl"), "v")
    assert "ACL not found" in str(err.value)


def test_acl_master_token_allows_everything(acl_emu: EmulatorProcess) -> None:
    root = _acl_client(acl_emu, ACL_TOKEN)
    k = key("acl")
    assert root.kv.put(k, "v") is True
    _, entry = root.kv.get(k)
    assert entry["Value"] == b"v"
    sid = root.session.create(checks=[], lock_delay=0)
    assert root.kv.put(k, "locked", acquire=sid) is True
    assert root.session.destroy(sid) is True


def test_acl_bearer_header_is_accepted(acl_emu: EmulatorProcess) -> None:
    k = key("bearer")
    url = acl_emu.urls["dc1"] + "/v1/kv/" + k
    resp = httpx.put(url, content=b"b", headers={"Authorization": f"Bearer {ACL_TOKEN}"}, timeout=10)
    assert resp.status_code == 200, resp.text
    assert resp.json() is True
