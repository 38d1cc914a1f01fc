"""Diagnostics: sample every replica's ``GET /v1/status`` into ``status.jsonl``.

Off by default (it adds load); `python -m sim.lab run ... --status-interval 0.2` turns it
on. One line per sample, ``t`` on the history's clock (the Recorder's), with what tells
why a replica stopped saying yes: its role, DC state, reason, lease left, the local
Consul error, and the last probe round (its start on the replica's clock, in quorum,
members, the links it saw down). A probe loop that stops advancing shows as a constant
``round_started_at`` across samples.

Contract: bounded (one request per replica per interval, timeout = interval); stops when
the stop event is set; never raises into the harness.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import IO, Any

import httpx

from sim.lab.observe import Recorder


def compact(status: dict[str, Any]) -> dict[str, Any]:
    """The fields of a /v1/status document the diagnosis needs."""
    quorum = status.get("quorum") or {}
    links = status.get("undirected") or {}
    down = sorted({"-".join(sorted((a, b))) for a, row in links.items() for b, up in row.items() if not up})
    return {
        "role": status.get("role"),
        "dc_state": status.get("dc_state"),
        "allowed": status.get("allowed"),
        "reason": status.get("reason"),
        "lease_remaining": status.get("lease_remaining"),
        "consul_error": status.get("consul_error"),
        "in_quorum": quorum.get("in_quorum"),
        "members": quorum.get("members"),
        "quorum_reason": quorum.get("reason"),
        "round_started_at": quorum.get("round_started_at"),
        "links_down": down,
        "transitions": len(status.get("transitions") or ()),
    }


class StatusSampler:
    def __init__(self, rec: Recorder, client: httpx.AsyncClient, apis: dict[str, str], path: Path,
                 interval: float) -> None:
        """`apis`: replica id -> API base URL (the management address)."""
        self.rec, self.client, self.apis, self.interval = rec, client, apis, interval
        self._fh: IO[str] = open(path, "w", encoding="utf-8")  # noqa: SIM115 (closed in run)

    async def _one(self, rid: str, api: str) -> None:
        sent = self.rec.now()
        try:
            resp = await self.client.get(f"{api}/v1/status", timeout=self.interval)
            doc = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            line: dict[str, Any] = {"t": sent, "replica": rid, "error": type(exc).__name__}
        else:
            line = {"t": sent, "rtt": round(self.rec.now() - sent, 4), "replica": rid, **compact(doc)}
        self._fh.write(json.dumps(line, sort_keys=True) + "\n")

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                began = time.monotonic()
                await asyncio.gather(*(self._one(rid, api) for rid, api in self.apis.items()))
                self._fh.flush()
                await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - began)))
        finally:
            self._fh.close()
