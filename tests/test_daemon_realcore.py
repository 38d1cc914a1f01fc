"""The API and runner around REAL ReplicaCores, in-process, against the Consul emulator.

Three Runner+ReplicaCore+AsyncConsul stacks (one per DC) share this test's event loop;
the emulator runs as a subprocess. Checks the API contract with the real core: yes
answers carry a token, a long poll wakes when an admin fence changes the answer, metrics
and status follow, unfence goes back through catching-up with a HIGHER token, and a
graceful shutdown finishes. Waits poll with generous deadlines; nothing is timed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from emu_helpers import running_emulator
from prometheus_client.parser import text_string_to_metric_families

from coordinator.config import load_topology
from coordinator.consul.client import AsyncConsul
from coordinator.consul.config import ConsulConfig
from coordinator.core.replica import ReplicaCore
from coordinator.daemon.api import Api
from coordinator.daemon.metrics import Metrics
from coordinator.daemon.runner import Runner
from coordinator.daemon.transitions import TransitionLog

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

TOPOLOGY = Path(__file__).resolve().parent.parent / "topology.yaml"
DCS = ("dc1", "dc2", "dc3")
ADMIN = "realcore-admin-token"
DEADLINE = 60.0
AUTH = {"Authorization": f"Bearer {ADMIN}"}


@asynccontextmanager
async def stack(dc: str, url: str) -> AsyncIterator[tuple[TestClient[Any, Any], Runner]]:
    async with AsyncConsul(ConsulConfig(address=url)) as consul:
        core = ReplicaCore(load_topology(TOPOLOGY), dc, f"{dc}-a")
        runner = Runner(core, consul)
        transitions = TransitionLog(runner.status, dc)
        runner.add_answer_listener(transitions.poll)
        client = TestClient(TestServer(Api(runner, Metrics(runner, transitions), admin_token=ADMIN).app()))
        await client.start_server()
        runner.start()
        try:
            yield client, runner
        finally:
            await runner.shutdown(5.0)
            await client.close()


async def _eventually(what: str, check: Callable[[], Coroutine[Any, Any, bool]]) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while not await check():
        assert loop.time() < deadline, f"never saw: {what}"
        await asyncio.sleep(0.1)


async def _answer(client: TestClient[Any, Any], **params: str) -> tuple[int, dict[str, Any]]:
    resp = await client.get("/v1/may-write", params=params)
    return resp.status, await resp.json()


async def _metric(client: TestClient[Any, Any], name: str, **labels: str) -> float:
    text = await (await client.get("/metrics")).text()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    raise AssertionError(f"{name}{labels} not exported")


def test_api_with_real_replica_cores() -> None:
    async def body(urls: dict[str, str]) -> None:
        async with AsyncExitStack() as es:
            stacks = [await es.enter_async_context(stack(dc, urls[dc])) for dc in DCS]
            clients = [c for c, _ in stacks]
            c1, r1 = stacks[0]

            async def all_yes() -> bool:
                return [(await _answer(c))[0] for c in clients] == [200] * len(clients)

            await _eventually("every DC allowed", all_yes)
            status, yes = await _answer(c1)
            assert status == 200 and yes["token"] > 0 and "dc1" in yes["quorum"]
            assert 0 < yes["valid_for_ms"] <= 1500
            assert await _metric(c1, "coordinator_writable") == 1.0
            assert await _metric(c1, "coordinator_is_leader") == 1.0
            assert await _metric(c1, "coordinator_token") == float(yes["token"])

            # Long poll from a yes, woken by the admin fence (the change of answer).
            status, current = await _answer(c1)
            poll = asyncio.ensure_future(_answer(c1, index=str(current["index"]), wait="60s"))
            resp = await c1.post("/v1/fence", headers=AUTH)
            assert resp.status == 200
            status, fenced = await asyncio.wait_for(poll, DEADLINE)
            assert fenced["index"] > current["index"]
            # The poll may wake on an earlier change (a lease renewal moves the index too):
            # what must hold is that the fence is what we see now.
            status, fenced = await _answer(c1)
            assert status == 503 and fenced["reason"] == "fenced-by-admin"
            assert await _metric(c1, "coordinator_writable") == 0.0
            assert await _metric(c1, "coordinator_fences_total") >= 1.0
            snapshot = await (await c1.get("/v1/status")).json()
            assert snapshot["admin_fenced"] is True and snapshot["dc_state"] == "fenced"

            assert (await c1.post("/v1/unfence", headers=AUTH)).status == 200

            async def dc1_back() -> bool:
                return (await _answer(c1))[0] == 200

            await _eventually("dc1 writable again after unfence", dc1_back)
            status, again = await _answer(c1)
            assert again["token"] > yes["token"], "a new writable period needs a new, higher token"
            snapshot = await (await c1.get("/v1/status")).json()
            seen = [(t["from_state"], t["to_state"]) for t in snapshot["transitions"]]
            assert seen[-2:] == [("fenced", "catching-up"), ("catching-up", "writable")]

            assert await r1.shutdown(5.0) is True
            status, bye = await _answer(c1)
            assert status == 503 and bye["reason"] == "shutting-down"

    with running_emulator(DCS, extra_args=["--forward-timeout", "2"]) as emu:
        asyncio.run(body(emu.urls))
