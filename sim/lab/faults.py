"""Turning the simulator's fault vocabulary (sim.world.faults.FaultSpec) into real faults.

Link faults are composed per directed link with reference counts keyed by fault id, so
overlapping faults (e.g. a ring and an isolate) add up and heal independently. The
ground truth of a directed link a -> b is "up" iff no fault drops a's packets in b and
neither a's nor b's bridge port is down; every change of that truth is recorded as a
``link`` event. Kinds the lab understands:

- link: ``cut`` (a, b; ``oneway``: only a -> b), ``partition`` (groups), ``ring`` (order;
  only neighbours stay linked), ``bridge`` (two groups joined only through the bridge DC),
  ``isolate`` (dc: bridge port down), ``flap`` (a, b: cut/heal every period/2);
- process: ``crash`` (SIGKILL a replica, restart when the fault ends), ``pause``
  (SIGSTOP / SIGCONT), ``consul-crash`` and ``consul-pause`` (the same for a DC's
  emulated Consul process), ``leader-loss`` (the emulator's fault API: no Raft leader).
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import combinations

from sim.lab.net import LabNet
from sim.lab.observe import Recorder
from sim.world.faults import FaultSpec

Link = tuple[str, str]

LINK_FAULTS = ("cut", "partition", "ring", "bridge", "isolate", "flap")
PROC_FAULTS = ("crash", "pause", "consul-crash", "consul-pause", "leader-loss")
LAB_KINDS = (*LINK_FAULTS, *PROC_FAULTS)


def both(a: str, b: str) -> set[Link]:
    return {(a, b), (b, a)}


def dropped_links(spec: FaultSpec, names: Iterable[str]) -> set[Link]:
    """The directed links a link fault drops (isolate/flap excepted: handled separately)."""
    all_names = list(names)
    out: set[Link] = set()
    if spec.kind in ("cut", "flap"):
        a, b = spec.dcs[0], spec.dcs[1]
        return {(a, b)} if spec.oneway else both(a, b)
    if spec.kind == "partition":
        for g1, g2 in combinations(spec.groups, 2):
            for a in g1:
                for b in g2:
                    out |= both(a, b)
    elif spec.kind == "ring":
        order = list(spec.dcs) or all_names
        n = len(order)
        neighbours = {frozenset((order[i], order[(i + 1) % n])) for i in range(n)}
        for a, b in combinations(order, 2):
            if frozenset((a, b)) not in neighbours:
                out |= both(a, b)
    elif spec.kind == "bridge":
        for a in spec.groups[0]:
            for b in spec.groups[1]:
                out |= both(a, b)
    return out


class LinkFaults:
    """Reference-counted drops and port-downs, applied to `net`, truth recorded in `rec`."""

    def __init__(self, net: LabNet, rec: Recorder) -> None:
        self.net, self.rec = net, rec
        self.names = list(net.dcs)
        self.drops: dict[Link, set[int]] = {}
        self.down_ports: dict[str, set[int]] = {}
        self._truth = {(a, b): True for a in self.names for b in self.names if a != b}

    def is_up(self, link: Link) -> bool:
        a, b = link
        return not self.drops.get(link) and not self.down_ports.get(a) and not self.down_ports.get(b)

    def set_drops(self, fault_id: int, links: Iterable[Link], on: bool) -> None:
        for link in links:
            holders = self.drops.setdefault(link, set())
            before = bool(holders)
            if on:
                holders.add(fault_id)
            else:
                holders.discard(fault_id)
            if before != bool(holders):
                self.net.drop(link[0], link[1], bool(holders))
        self._record()

    def set_port(self, fault_id: int, dc: str, down: bool) -> None:
        holders = self.down_ports.setdefault(dc, set())
        before = bool(holders)
        if down:
            holders.add(fault_id)
        else:
            holders.discard(fault_id)
        if before != bool(holders):
            self.net.link(dc, not holders)
        self._record()

    def links_of(self, dc: str) -> set[Link]:
        return {(dc, o) for o in self.names if o != dc} | {(o, dc) for o in self.names if o != dc}

    def _record(self) -> None:
        for link, was_up in sorted(self._truth.items()):
            now_up = self.is_up(link)
            if now_up != was_up:
                self._truth[link] = now_up
                self.rec.emit("link", **{"from": link[0], "to": link[1], "up": now_up})
