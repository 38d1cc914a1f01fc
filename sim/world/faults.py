"""Fault specifications and how each one starts and ends in a world.

A `FaultSpec` is pure data (from a scenario file or the random generator). `FaultHost` is
what a fault needs from the world; `start`/`end` apply a fault through it. Link faults
register their contribution with the `Network` under the fault's id, so overlapping faults
compose. Every fault with a duration ends by itself; faults without one end at `quiet`.

Kinds (see docs/simulation.md for the YAML form):
  cut (a, b; oneway), isolate (dc), partition (groups), ring (order), bridge (two groups +
  the bridge DC), flap (a, b; period; oneway), delay (a, b or dc; delay), loss (a, b or dc;
  loss), crash (dc, replica; restart after duration), pause (dc, replica; duration),
  leader-loss (dc: its Consul loses its Raft leader), drift (dc, replica; rate),
  hook-failure (dc; mode fail | hang), admin-fence (dc, replica: an operator's
  `POST /v1/fence` on that replica; `POST /v1/unfence` on it when the fault ends).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from sim.world.network import Link, Network

LINK_KINDS = ("cut", "isolate", "partition", "ring", "bridge", "flap", "delay", "loss")
REPLICA_KINDS = ("crash", "pause", "drift")
DC_KINDS = ("leader-loss", "hook-failure", "admin-fence")
KINDS = (*LINK_KINDS, *REPLICA_KINDS, *DC_KINDS)
HOOK_MODES = ("fail", "hang")


@dataclass(frozen=True)
class FaultSpec:
    kind: str
    at: float
    duration: float | None = None
    """None: lasts until faults stop (quiet)."""
    dcs: tuple[str, ...] = ()
    """cut/flap/delay/loss: (a, b) or (dc,); isolate/crash/pause/leader-loss/hook/drift: (dc,);
    ring: the ring order (empty = every DC); bridge: (bridge DC,)."""
    groups: tuple[tuple[str, ...], ...] = ()
    """partition: the sides; bridge: the two sides the bridge DC joins."""
    oneway: bool = False
    replica: str = "leader"
    """crash/pause/drift/admin-fence target: a replica id, or 'leader' / 'follower' resolved
    at start."""
    delay: float = 0.0
    loss: float = 0.0
    period: float = 2.0
    rate: float = 1.0
    mode: str = "fail"
    line: int | None = field(default=None, compare=False)
    """Line in the scenario file (for messages)."""

    def describe(self) -> str:
        span = "" if self.duration is None else f" for {self.duration:g}s"
        where = {
            "cut": lambda: f"{self.dcs[0]}{' ->' if self.oneway else ' <->'} {self.dcs[1]}",
            "isolate": lambda: self.dcs[0],
            "partition": lambda: " | ".join(",".join(g) for g in self.groups),
            "ring": lambda: "-".join(self.dcs) if self.dcs else "all",
            "bridge": lambda: f"{','.join(self.groups[0])} <{self.dcs[0]}> {','.join(self.groups[1])}",
            "flap": lambda: f"{self.dcs[0]}{' ->' if self.oneway else ' <->'} {self.dcs[1]} "
            f"every {self.period:g}s",
            "delay": lambda: f"{'-'.join(self.dcs)} +{self.delay * 1000:g}ms",
            "loss": lambda: f"{'-'.join(self.dcs)} {self.loss * 100:g}%",
            "crash": lambda: f"{self.dcs[0]}/{self.replica}",
            "pause": lambda: f"{self.dcs[0]}/{self.replica}",
            "drift": lambda: f"{self.dcs[0]}/{self.replica} rate {self.rate:g}",
            "leader-loss": lambda: f"{self.dcs[0]} Consul",
            "hook-failure": lambda: f"{self.dcs[0]} hooks {self.mode}",
            "admin-fence": lambda: f"{self.dcs[0]} via {self.replica}",
        }[self.kind]()
        return f"{self.kind} {where}{span}"


class FaultHost(Protocol):
    """What faults need from the world (implemented by sim.world.world.World)."""

    network: Network
    dc_names: tuple[str, ...]

    def links_changed(self) -> None: ...
    def resolve_replica(self, dc: str, which: str) -> str: ...
    def crash(self, dc: str, replica: str) -> None: ...
    def restart(self, dc: str, replica: str) -> None: ...
    def pause(self, dc: str, replica: str) -> None: ...
    def resume(self, dc: str, replica: str) -> None: ...
    def set_rate(self, dc: str, replica: str, rate: float) -> None: ...
    def set_consul_leader(self, dc: str, up: bool) -> None: ...
    def set_hook_failure(self, dc: str, mode: str | None) -> None: ...
    def admin_fence(self, dc: str, replica: str, on: bool) -> None: ...
    def start_flap(self, fault_id: int, links: list[Link], period: float) -> None: ...


def both(a: str, b: str, oneway: bool = False) -> list[Link]:
    return [(a, b)] if oneway else [(a, b), (b, a)]


def affected_links(spec: FaultSpec, dcs: tuple[str, ...]) -> list[Link]:
    """The directed links a link fault touches."""
    if spec.kind in ("cut", "flap"):
        return both(spec.dcs[0], spec.dcs[1], spec.oneway)
    if spec.kind in ("delay", "loss"):
        if len(spec.dcs) == 2:
            return both(spec.dcs[0], spec.dcs[1], spec.oneway)
        return [(a, b) for a in dcs for b in dcs if a != b and spec.dcs[0] in (a, b)]
    if spec.kind == "isolate":
        return [(a, b) for a in dcs for b in dcs if a != b and spec.dcs[0] in (a, b)]
    if spec.kind == "partition":
        side = {dc: i for i, group in enumerate(spec.groups) for dc in group}
        rest = len(spec.groups)
        return [(a, b) for a in dcs for b in dcs
                if a != b and side.get(a, rest) != side.get(b, rest)]
    if spec.kind == "ring":
        order = list(spec.dcs) or list(dcs)
        n = len(order)
        pos = {dc: i for i, dc in enumerate(order)}
        out: list[Link] = []
        for a in order:
            for b in order:
                if a != b and (pos[a] - pos[b]) % n not in (1, n - 1):
                    out.append((a, b))
        return out
    if spec.kind == "bridge":
        left, right = spec.groups
        return [link for a in left for b in right for link in both(a, b)]
    return []


def affected_dcs(spec: FaultSpec, dcs: tuple[str, ...]) -> list[str]:
    if spec.kind in LINK_KINDS:
        touched = {x for link in affected_links(spec, dcs) for x in link}
        return [dc for dc in dcs if dc in touched]
    return [spec.dcs[0]]


@dataclass
class ActiveFault:
    fault_id: int
    spec: FaultSpec
    replica: str | None = None
    """The replica a replica fault resolved to at start."""
    previous_rate: float | None = None


def start(host: FaultHost, fault_id: int, spec: FaultSpec) -> ActiveFault:
    active = ActiveFault(fault_id, spec)
    kind = spec.kind
    if kind in ("cut", "isolate", "partition", "ring", "bridge"):
        host.network.cut(fault_id, affected_links(spec, host.dc_names))
        host.links_changed()
    elif kind == "flap":
        host.start_flap(fault_id, affected_links(spec, host.dc_names), spec.period)
    elif kind in ("delay", "loss"):
        host.network.degrade(fault_id, affected_links(spec, host.dc_names), spec.delay, spec.loss)
        host.links_changed()
    elif kind in REPLICA_KINDS:
        dc = spec.dcs[0]
        active.replica = host.resolve_replica(dc, spec.replica)
        if kind == "crash":
            host.crash(dc, active.replica)
        elif kind == "pause":
            host.pause(dc, active.replica)
        else:
            host.set_rate(dc, active.replica, spec.rate)
    elif kind == "leader-loss":
        host.set_consul_leader(spec.dcs[0], False)
    elif kind == "hook-failure":
        host.set_hook_failure(spec.dcs[0], spec.mode)
    elif kind == "admin-fence":
        active.replica = host.resolve_replica(spec.dcs[0], spec.replica)
        host.admin_fence(spec.dcs[0], active.replica, True)
    return active


def end(host: FaultHost, active: ActiveFault) -> None:
    """Undo a fault. A drift (rate change) is permanent: ending it changes nothing."""
    spec = active.spec
    kind = spec.kind
    if kind in LINK_KINDS:
        host.network.uncut(active.fault_id)
        host.network.restore(active.fault_id)
        host.links_changed()
    elif kind == "crash" and active.replica is not None:
        host.restart(spec.dcs[0], active.replica)
    elif kind == "pause" and active.replica is not None:
        host.resume(spec.dcs[0], active.replica)
    elif kind == "leader-loss":
        host.set_consul_leader(spec.dcs[0], True)
    elif kind == "hook-failure":
        host.set_hook_failure(spec.dcs[0], None)
    elif kind == "admin-fence" and active.replica is not None:
        host.admin_fence(spec.dcs[0], active.replica, False)
