"""API-layer tests of coordinator.daemon.api, driven through a real Runner around a
hand-scripted StubCore (tests/daemon_stubs.py): they check the HTTP contract, not the
core's decisions. End-to-end tests with the real ReplicaCore are in test_daemon_e2e.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer
from daemon_stubs import StubCore, StubSender
from prometheus_client.parser import text_string_to_metric_families

from coordinator.core.protocol import AdminAction, Reason
from coordinator.daemon.api import ADMIN_DISABLED, Api
from coordinator.daemon.metrics import Metrics
from coordinator.daemon.runner import Runner
from coordinator.daemon.transitions import TransitionLog

ADMIN = "s3cret-admin-token-value"


@asynccontextmanager
async def api_client(
    core: StubCore, admin_token: str | None = ADMIN, sender: StubSender | None = None
) -> AsyncIterator[tuple[TestClient[Any, Any], Runner]]:
    runner = Runner(core, sender or StubSender())
    transitions = TransitionLog(runner.status, core.dc)
    runner.add_answer_listener(transitions.poll)
    api = Api(runner, Metrics(runner, transitions), admin_token=admin_token)
    client = TestClient(TestServer(api.app()))
    await client.start_server()
    runner.start()
    try:
        yield client, runner
    finally:
        await runner.close()
        await client.close()


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(test())


def test_may_write_yes_is_200_with_token_and_lease() -> None:
    async def body() -> None:
        async with api_client(StubCore(allowed=True, token=7)) as (client, _):
            resp = await client.get("/v1/may-write")
            assert resp.status == 200
            data = await resp.json()
            assert data["allowed"] is True and data["token"] == 7 and data["dc"] == "dc1"
            assert data["quorum"] == ["dc1", "dc2"] and data["leader"] == "r1"
            assert 0 < data["valid_for_ms"] <= 1500
            assert isinstance(data["valid_for_ms"], int)
            assert resp.headers["X-Coordinator-Index"] == str(data["index"]) == "1"

    run(body)


def test_valid_for_is_computed_at_send_time_and_rounded_down() -> None:
    async def body() -> None:
        core = StubCore(allowed=True)
        async with api_client(core) as (client, runner):
            core.lease_until = runner.clock() + 0.5
            data = await (await client.get("/v1/may-write")).json()
            assert 0 <= data["valid_for_ms"] < 500

    run(body)


def test_may_write_no_is_503_with_reason() -> None:
    async def body() -> None:
        async with api_client(StubCore(allowed=False, reason=Reason.CATCHING_UP)) as (client, _):
            resp = await client.get("/v1/may-write")
            assert resp.status == 503
            data = await resp.json()
            assert data == {
                "allowed": False,
                "dc": "dc1",
                "reason": "catching-up",
                "leader": "r1",
                "index": 1,
            }

    run(body)


def test_long_poll_wakes_when_answer_changes() -> None:
    async def body() -> None:
        core = StubCore(allowed=True)
        async with api_client(core) as (client, runner):
            poll = asyncio.ensure_future(client.get("/v1/may-write", params={"index": "1", "wait": "60s"}))
            await asyncio.sleep(0.05)
            assert not poll.done()
            runner.admin(AdminAction.FENCE)
            resp = await asyncio.wait_for(poll, 30)
            assert resp.status == 503
            data = await resp.json()
            assert data["reason"] == "fenced-by-admin" and data["index"] == 2

    run(body)


def test_long_poll_woken_by_timer_driven_change() -> None:
    async def body() -> None:
        core = StubCore(allowed=True)
        async with api_client(core) as (client, runner):
            core.deadline = runner.clock() + 0.05
            original = core.on_timer

            def on_timer(now: float) -> list[Any]:
                core.set_no(Reason.LEASE_EXPIRED, now)
                return original(now)

            core.on_timer = on_timer  # type: ignore[method-assign]
            runner._wake.set()
            resp = await client.get("/v1/may-write", params={"index": "1", "wait": "60s"})
            assert (await resp.json())["reason"] == "lease-expired"

    run(body)


def test_long_poll_returns_unchanged_at_wait() -> None:
    async def body() -> None:
        async with api_client(StubCore(allowed=True)) as (client, _):
            resp = await client.get("/v1/may-write", params={"index": "1", "wait": "100ms"})
            assert resp.status == 200
            assert (await resp.json())["index"] == 1

    run(body)


@pytest.mark.parametrize("index", ["0", "99"])
def test_index_zero_or_ahead_does_not_block(index: str) -> None:
    async def body() -> None:
        async with api_client(StubCore(allowed=True)) as (client, _):
            resp = await asyncio.wait_for(
                client.get("/v1/may-write", params={"index": index, "wait": "10m"}), 30
            )
            assert resp.status == 200

    run(body)


@pytest.mark.parametrize(
    "params",
    [{"index": "abc"}, {"index": "-1"}, {"index": "1.5"}, {"wait": "10"}, {"wait": "soon"}, {"wait": "-1s"}],
)
def test_bad_blocking_params_are_400_json(params: dict[str, str]) -> None:
    async def body() -> None:
        async with api_client(StubCore()) as (client, _):
            resp = await client.get("/v1/may-write", params=params)
            assert resp.status == 400
            assert "error" in await resp.json()

    run(body)


@pytest.mark.parametrize("path", ["/v1/fence", "/v1/unfence", "/v1/caught-up"])
def test_admin_disabled_without_token_file(path: str) -> None:
    async def body() -> None:
        core = StubCore()
        async with api_client(core, admin_token=None) as (client, _):
            resp = await client.post(path, headers={"Authorization": f"Bearer {ADMIN}"})
            assert resp.status == 403
            assert await resp.json() == {"error": ADMIN_DISABLED}
            assert core.admin_log == []

    run(body)


@pytest.mark.parametrize("auth", [None, "Bearer wrong", f"Basic {ADMIN}", f"Bearer {ADMIN}x", "Bearer "])
def test_admin_wrong_token_is_401(auth: str | None) -> None:
    async def body() -> None:
        core = StubCore()
        headers = {"Authorization": auth} if auth is not None else {}
        async with api_client(core) as (client, _):
            resp = await client.post("/v1/fence", headers=headers)
            assert resp.status == 401
            text = await resp.text()
            assert ADMIN not in text and "error" in json.loads(text)
            assert core.admin_log == []

    run(body)


@pytest.mark.parametrize(
    ("path", "action"),
    [
        ("/v1/fence", AdminAction.FENCE),
        ("/v1/unfence", AdminAction.UNFENCE),
        ("/v1/caught-up", AdminAction.CAUGHT_UP),
    ],
)
def test_admin_right_token_reaches_core(path: str, action: AdminAction) -> None:
    async def body() -> None:
        core = StubCore()
        async with api_client(core) as (client, _):
            resp = await client.post(path, headers={"Authorization": f"Bearer {ADMIN}"})
            assert resp.status == 200
            data = await resp.json()
            assert data["action"] == action.value
            assert core.admin_log == [action]
            if action is AdminAction.FENCE:
                assert data["allowed"] is False and data["reason"] == "fenced-by-admin"

    run(body)


def test_unknown_path_404_and_wrong_method_405_are_json() -> None:
    async def body() -> None:
        async with api_client(StubCore()) as (client, _):
            resp = await client.get("/v1/nope")
            assert resp.status == 404 and "error" in await resp.json()
            resp = await client.post("/v1/may-write")
            assert resp.status == 405 and "error" in await resp.json()
            assert "GET" in resp.headers["Allow"]
            resp = await client.get("/v1/fence")
            assert resp.status == 405 and resp.headers["Allow"] == "POST"

    run(body)


def _families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def _value(family: Any, **labels: str) -> float:
    for sample in family.samples:
        if all(sample.labels.get(k) == v for k, v in labels.items()) and not sample.name.endswith("_created"):
            return float(sample.value)
    raise AssertionError(f"no sample {labels} in {family.name}")


def test_metrics_parse_and_track_answers_and_transitions() -> None:
    async def body() -> None:
        core = StubCore(allowed=True, token=9)
        async with api_client(core) as (client, runner):
            await client.get("/v1/may-write")
            await client.get("/v1/may-write")
            runner.admin(AdminAction.FENCE)
            await client.get("/v1/may-write")
            resp = await client.get("/metrics")
            assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain")
            fam = _families(await resp.text())
            assert _value(fam["coordinator_writable"]) == 0.0
            assert _value(fam["coordinator_in_quorum"]) == 1.0
            assert _value(fam["coordinator_is_leader"]) == 1.0
            assert _value(fam["coordinator_token"]) == 0.0
            assert _value(fam["coordinator_may_write_requests"], allowed="true") == 2.0
            assert _value(fam["coordinator_may_write_requests"], allowed="false") == 1.0
            assert _value(fam["coordinator_fences"]) == 1.0
            assert _value(fam["coordinator_transitions"], to="fenced") == 1.0
            assert _value(fam["coordinator_dc_state"], state="fenced") == 1.0
            assert _value(fam["coordinator_dc_state"], state="writable") == 0.0
            assert _value(fam["coordinator_link_up"], **{"from": "dc1", "to": "dc2"}) == 1.0
            assert _value(fam["coordinator_link_up"], **{"from": "dc1", "to": "dc3"}) == 0.0
            assert _value(fam["coordinator_consul_requests"], outcome="timeout") == 0.0

    run(body)


def test_status_is_json_snapshot() -> None:
    async def body() -> None:
        async with api_client(StubCore(allowed=True, token=5)) as (client, _):
            resp = await client.get("/v1/status")
            assert resp.status == 200
            data = await resp.json()
            assert data["dc"] == "dc1" and data["token"] == 5 and data["dc_state"] == "writable"
            assert data["quorum"]["members"] == ["dc1", "dc2"]
            assert data["directed"]["dc1"]["dc3"] is False

    run(body)


def test_openapi_document_is_served_and_valid() -> None:
    async def body() -> None:
        async with api_client(StubCore()) as (client, _):
            resp = await client.get("/v1/openapi.yaml")
            assert resp.status == 200
            doc = yaml.safe_load(await resp.text())
        assert doc["openapi"].startswith("3.1")
        for path in ("/v1/may-write", "/v1/status", "/metrics", "/v1/fence", "/v1/unfence", "/v1/caught-up"):
            assert path in doc["paths"]
        assert doc["components"]["schemas"]["Reason"]["enum"] == [r.value for r in Reason]
        validator = pytest.importorskip("openapi_spec_validator")
        validator.validate(doc)

    run(body)


def test_admin_token_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def body() -> None:
        async with api_client(StubCore()) as (client, _):
            await client.post("/v1/fence", headers={"Authorization": "Bearer wrong-token-guess"})
            await client.post("/v1/fence", headers={"Authorization": f"Bearer {ADMIN}"})
            await client.get("/v1/may-write")

    with caplog.at_level(logging.DEBUG):
        run(body)
    assert "transition dc=dc1 writable -> fenced" in caplog.text
    assert ADMIN not in caplog.text and "wrong-token-guess" not in caplog.text
