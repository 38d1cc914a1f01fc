"""Only GET /v1/may-write hands a "yes" out; status, metrics and admin responses only show it.

A stub core counts `may_write` calls (the recording read of ReplicaCore) apart from the
ones its own `status` makes (ReplicaCore.status reads through the non-recording `peek`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from daemon_stubs import StubCore
from test_daemon_api import ADMIN, api_client

from coordinator.core.protocol import MayWriteAnswer, StatusSnapshot


@dataclass
class CountingCore(StubCore):
    handed_out: int = 0

    def may_write(self, now: float) -> MayWriteAnswer:
        self.handed_out += 1
        return super().may_write(now)

    def status(self, now: float) -> StatusSnapshot:
        before = self.handed_out
        try:
            return super().status(now)
        finally:
            self.handed_out = before


def test_status_metrics_and_admin_hand_nothing_out_may_write_does() -> None:
    async def body() -> None:
        core = CountingCore(allowed=True, token=5)
        async with api_client(core) as (client, _):
            auth = {"Authorization": f"Bearer {ADMIN}"}
            assert (await client.get("/v1/status")).status == 200
            metrics = await (await client.get("/metrics")).text()
            assert "coordinator_token 5.0" in metrics and "coordinator_writable 1.0" in metrics
            assert (await client.post("/v1/unfence", headers=auth)).status == 200
            assert core.handed_out == 0
            assert (await client.get("/v1/may-write")).status == 200
            assert core.handed_out == 1

    asyncio.run(body())
