"""Display extras: WAN gossip members and WAN round-trip estimates (leader only).

Fetched every `INTERVAL` seconds for the status snapshot and NEVER used to decide that a
DC is up (gossip and coordinates are not reachability proofs: consul-semantics.md). A
failure here only leaves the previous values in place; it does not fence.
"""

from __future__ import annotations

import statistics

from coordinator.consul import sansio as c
from coordinator.consul.errors import ConsulError
from coordinator.consul.models import DcCoords, Member
from coordinator.core.plumbing import Inflight, Pending, Result, unwrap
from coordinator.core.protocol import Command, WanMember

INTERVAL = 5.0
TIMEOUT = 2.0


class Extras:
    def __init__(self, dc: str, inflight: Inflight) -> None:
        self.dc = dc
        self.inflight = inflight
        self.members: tuple[Member, ...] = ()
        self.coords: tuple[DcCoords, ...] = ()
        self.next_at = 0.0

    def next_deadline(self) -> float | None:
        return None if self.inflight.has("extras.members") else self.next_at

    def on_timer(self, now: float) -> list[Command]:
        if now < self.next_at or self.inflight.has("extras.members"):
            return []
        self.next_at = now + INTERVAL
        return [
            self.inflight.send("extras.members", c.agent_members(wan=True, timeout=TIMEOUT), now),
            self.inflight.send("extras.coords", c.coordinate_datacenters(timeout=TIMEOUT), now),
        ]

    def handle(self, p: Pending, result: Result, now: float) -> list[Command]:
        try:
            if p.kind == "extras.members":
                self.members = unwrap(result, c.parse_agent_members)
            else:
                self.coords = unwrap(result, c.parse_coordinate_datacenters)
        except ConsulError:
            pass
        return []

    def wan_members(self) -> tuple[WanMember, ...]:
        return tuple(WanMember(m.name, m.addr, m.port, m.dc, m.status) for m in self.members)

    def rtt_ms(self) -> dict[str, float]:
        """Median estimated RTT between this DC's servers and each other DC's servers."""
        mine = [n.coord for d in self.coords if d.datacenter == self.dc for n in d.coordinates]
        out: dict[str, float] = {}
        if not mine:
            return out
        for d in self.coords:
            if d.datacenter == self.dc or not d.coordinates:
                continue
            samples = [a.rtt_to(n.coord) for a in mine for n in d.coordinates]
            out[d.datacenter] = round(statistics.median(samples) * 1000.0, 3)
        return out
