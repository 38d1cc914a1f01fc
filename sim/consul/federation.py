"""Pure WAN view shared by every DC a process (or simulator) knows: link states and routing.

`route(src, dst, now)` says what a request forwarded with `?dc=dst` from `src` meets:
- `deliver`: hand it to dst's router;
- `hang`: the link is cut but WAN gossip has not yet declared dst failed: the caller waits
  `forward_timeout` then answers 500 `Remote DC has no server currently reachable`
  (real Consul hangs on the dial timeout, 10s by default);
- `fail`: dst has been unreachable for `fail_after` seconds (WAN gossip marked its servers
  failed): 500 `Remote DC has no server currently reachable` at once;
- `unknown`: dst is not a known DC: 500 `No path to datacenter`.

Links are one-directional; WAN membership (`member_status`) treats a DC as failed when the
link in EITHER direction has been down for `fail_after` (gossip needs both directions).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

RouteKind = Literal["deliver", "hang", "fail", "unknown"]

ALIVE = 1
FAILED = 4
DEFAULT_FAIL_AFTER = 30.0
"""Seconds of cut link before WAN gossip marks a DC's server failed (Consul: ~30-40s)."""
SERVER_RPC_PORT = 8300
SERF_WAN_PORT = 8302


@dataclass
class Federation:
    datacenters: list[str]
    """Every DC known to this process (local and peers)."""
    fail_after: float = DEFAULT_FAIL_AFTER
    down_since: dict[tuple[str, str], float] = field(default_factory=dict)
    version: int = 0

    def __post_init__(self) -> None:
        if len(set(self.datacenters)) != len(self.datacenters):
            raise ValueError("duplicate datacenter name")

    def knows(self, dc: str) -> bool:
        return dc in self.datacenters

    def set_link(self, src: str, dst: str, up: bool, now: float) -> None:
        for name in (src, dst):
            if name not in self.datacenters:
                raise KeyError(name)
        if up:
            self.down_since.pop((src, dst), None)
        else:
            self.down_since.setdefault((src, dst), now)
        self.version += 1

    def heal(self) -> None:
        self.down_since.clear()
        self.version += 1

    def link_up(self, src: str, dst: str) -> bool:
        return (src, dst) not in self.down_since

    def route(self, src: str, dst: str, now: float) -> RouteKind:
        if dst not in self.datacenters:
            return "unknown"
        since = self.down_since.get((src, dst))
        if since is None:
            return "deliver"
        return "fail" if now - since >= self.fail_after else "hang"

    def member_status(self, viewer: str, dc: str, now: float) -> int:
        if dc == viewer:
            return ALIVE
        for key in ((viewer, dc), (dc, viewer)):
            since = self.down_since.get(key)
            if since is not None and now - since >= self.fail_after:
                return FAILED
        return ALIVE

    def position(self, dc: str) -> int:
        """Stable position of a DC (sorted by name) used to derive coordinates and ports."""
        return sorted(self.datacenters).index(dc)

    def coordinate(self, dc: str) -> dict[str, object]:
        """A Vivaldi-shaped WAN coordinate: DCs sit 10ms apart on a line, in name order."""
        vec = [0.0] * 8
        vec[0] = 0.010 * self.position(dc)
        return {"Vec": vec, "Error": 0.2, "Adjustment": 0.0, "Height": 1e-05}

    def by_distance(self, viewer: str) -> list[str]:
        """All DCs sorted by estimated RTT from `viewer` (itself first), ties by name."""
        me = self.position(viewer)
        return sorted(self.datacenters, key=lambda d: (abs(self.position(d) - me), d))

    def rpc_address(self, dc: str, ip: str = "127.0.0.1") -> str:
        return f"{ip}:{SERVER_RPC_PORT + self.position(dc)}"

    def state(self) -> dict[str, object]:
        return {
            "links": [{"from": s, "to": d, "state": "down", "down_since": t}
                      for (s, d), t in sorted(self.down_since.items())],
        }
