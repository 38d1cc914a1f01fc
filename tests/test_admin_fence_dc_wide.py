"""The DC-wide admin fence: the key `coordinator/<cluster>/dc/<dc>/admin-fence`.

Core (hand-written Consul answers, test_core_replica_driver): every round's txn reads the
key; a round that finds it fences the DC (reason fenced-by-admin) BEFORE its confirmation
is used, so a replica that was never fenced itself (a new leader after a fail-over) still
answers no; the fence lifts only when the key is gone AND the replica's own fence is
lifted, and then only through catch-up. API (StubSender): fence writes the key, unfence
deletes it first and refuses (503, still fenced) when Consul does not confirm."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from daemon_stubs import StubCore, StubSender
from test_core_replica import driver
from test_core_replica_driver import entry, txn_ok
from test_daemon_api import ADMIN, api_client

from coordinator.consul.errors import ConsulUnreachable
from coordinator.consul.sansio import Request, Response
from coordinator.core.dcstate import DcState
from coordinator.core.protocol import AdminAction, Reason
from coordinator.daemon.jsonable import to_jsonable
from coordinator.status_view import render_status

KEY = "coordinator/c1/dc/dc1/admin-fence"
API_KEY = "coordinator/demo/dc/dc1/admin-fence"
"""StubCore's status says cluster demo, dc dc1."""
AUTH = {"Authorization": f"Bearer {ADMIN}"}


def with_key() -> Response:
    """An applied round txn whose get-tree found the admin-fence key."""
    return txn_ok(entry("coordinator/c1/dc/dc1/leader", None), entry("row", None),
                  entry(KEY, b'{"fenced_by": "r2"}'))


def test_round_txn_reads_the_admin_fence_key() -> None:
    d = driver()
    d.to_leader()
    ops = json.loads(d.request("round.txn").body or b"")
    assert ops[2]["KV"] == {"Verb": "get-tree", "Key": KEY}


def test_key_found_fences_a_replica_that_never_was_fenced_itself() -> None:
    d = driver()
    d.to_writable(token=42)
    assert d.core.may_write(d.now).allowed
    d.next_round(3, txn=with_key())
    assert d.core.state is DcState.FENCED
    assert d.core.may_write(d.now).reason is Reason.FENCED_BY_ADMIN
    d.next_round(4, txn=with_key())
    assert d.core.may_write(d.now).reason is Reason.FENCED_BY_ADMIN


def test_new_leader_of_a_fenced_dc_never_starts_catching_up() -> None:
    d = driver()
    d.to_leader()
    d.round(1, txn=with_key())
    d.next_round(2, txn=with_key())  # would confirm (and start catching up) without the key
    assert d.core.state is DcState.FENCED
    assert not d.has("catchup.epoch_read")
    assert d.core.may_write(d.now).reason is Reason.FENCED_BY_ADMIN


def test_key_gone_lifts_the_fence_through_catch_up_only() -> None:
    d = driver()
    d.to_writable(token=42)
    d.next_round(3, txn=with_key())
    d.next_round(4)  # key gone: the fence lifts, the DC is FENCED (not writable) ...
    assert d.core.state is not DcState.WRITABLE
    assert not d.core.may_write(d.now).allowed
    assert d.core.may_write(d.now).reason is not Reason.FENCED_BY_ADMIN
    d.next_round(5)  # ... and a confirming round starts a catch-up
    assert d.core.state is DcState.CATCHING_UP


def test_own_fence_outlives_the_key_and_the_key_outlives_own_unfence() -> None:
    d = driver()
    d.to_writable(token=42)
    d.feed(d.core.on_admin(AdminAction.FENCE, d.now))
    d.next_round(3, txn=with_key())
    assert d.core.status(d.now).admin_fence == ("local", "dc-wide")
    d.next_round(4)  # key gone, own fence still on
    assert d.core.may_write(d.now).reason is Reason.FENCED_BY_ADMIN
    assert d.core.status(d.now).admin_fence == ("local",)
    d.next_round(5, txn=with_key())
    d.feed(d.core.on_admin(AdminAction.UNFENCE, d.now))  # own fence off, key still there
    assert d.core.may_write(d.now).reason is Reason.FENCED_BY_ADMIN
    status = d.core.status(d.now)
    assert status.admin_fenced and status.admin_fence == ("dc-wide",)
    assert "[admin_fenced(dc-wide)]" in render_status(to_jsonable(status))
    d.next_round(6)
    d.next_round(7)
    assert d.core.state is DcState.CATCHING_UP


def run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def test_fence_writes_the_key_and_unfence_deletes_it() -> None:
    async def body() -> None:
        sender = StubSender()
        async with api_client(StubCore(), sender=sender) as (client, _):
            resp = await client.post("/v1/fence", headers=AUTH)
            data = await resp.json()
            assert resp.status == 200 and data["dc_wide"] is True and data["reason"] == "fenced-by-admin"
            put = sender.sent[-1]
            assert put.method == "PUT" and put.path == f"/v1/kv/{API_KEY}"
            resp = await client.post("/v1/unfence", headers=AUTH)
            assert resp.status == 200 and (await resp.json())["dc_wide"] is True
            assert sender.sent[-1].method == "DELETE" and sender.sent[-1].path == f"/v1/kv/{API_KEY}"

    run(body())


def test_consul_down_fence_is_local_and_unfence_refused() -> None:
    async def down(req: Request) -> Response:
        raise ConsulUnreachable("connection refused")

    async def body() -> None:
        core = StubCore()
        async with api_client(core, sender=StubSender(down)) as (client, _):
            resp = await client.post("/v1/fence", headers=AUTH)
            data = await resp.json()
            assert resp.status == 200 and data["dc_wide"] is False and "not written" in data["error"]
            assert core.admin_log == [AdminAction.FENCE]
            resp = await client.post("/v1/unfence", headers=AUTH)
            assert resp.status == 503 and "still fenced" in (await resp.json())["error"]
            assert core.admin_log == [AdminAction.FENCE]  # the unfence never reached the core

    run(body())


# --- real processes: the fence survives a fail-over -------------------------------------


def _get(url: str) -> dict[str, object]:
    import httpx

    try:
        body = httpx.get(url, trust_env=False, timeout=2.0).json()
    except (httpx.HTTPError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


@pytest.mark.integration
def test_fence_survives_the_leader_dying_and_unfence_on_the_new_leader_lifts_it() -> None:
    import httpx
    from procs import wait_for

    from sim.lab.loopback import LoopbackCluster

    with LoopbackCluster(3, 2, admin_token=ADMIN) as c:
        ids = ("dc1-r1", "dc1-r2")

        def writable_leader() -> str | None:
            for rid in ids:
                if _get(c.apis[rid] + "/v1/may-write").get("allowed") is True:
                    return rid
            return None

        wait_for(lambda: writable_leader() is not None, "dc1 writable")
        old = writable_leader()
        assert old is not None
        new = ids[1] if old == ids[0] else ids[0]
        resp = httpx.post(c.apis[old] + "/v1/fence", headers=AUTH, trust_env=False, timeout=10)
        assert resp.status_code == 200 and resp.json()["dc_wide"] is True, resp.text
        c.replicas[old].kill()
        status, may_write = c.apis[new] + "/v1/status", c.apis[new] + "/v1/may-write"
        wait_for(lambda: _get(status).get("role") == "leader", "the other replica leads dc1")
        # Several probe rounds of the new leader: each one reads the key; none may say yes.
        end = time.monotonic() + 3.0
        seen = 0
        while time.monotonic() < end:
            ans = _get(may_write)
            assert ans.get("allowed") is not True, f"the new leader of a fenced DC said yes: {ans}"
            seen += ans.get("reason") == "fenced-by-admin"
            time.sleep(0.05)
        assert seen > 0
        resp = httpx.post(c.apis[new] + "/v1/unfence", headers=AUTH, trust_env=False, timeout=10)
        assert resp.status_code == 200, resp.text
        wait_for(lambda: _get(may_write).get("allowed") is True, "dc1 writable after unfence")
