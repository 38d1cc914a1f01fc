"""Ground truth for the invariant checker (sim.checker): what really held in the world.

Contains `GroundTruth`, rebuilt from history events: which directed links are down or
degraded (delay/loss), which DCs' Consul has no leader, which replicas are known and which
are stopped (down or paused), which faults are active and when the world was last
disturbed (heal, degradation, Consul leader change, replica stop/start). From these it
derives which DCs belong to a quorum clique (sim.world.truth) over the links alone and
over LIVE DCs only, and, per DC, since when it has been outside one (`QuorumLoss`), and
whether the world is in a settled MINORITY partition. Also `STATIC_CUT_FAULTS`.

Contract: the checker applies each link, consul, fault and replica event with its current
time `now` (events in non-decreasing time); `on_link`, `on_consul` and `on_fault` always
change the configuration, `on_replica` returns whether it did; after a change the caller
calls `recompute(now)` before reading `loss` or calling `minority_partition`. Nothing here
knows what replicas answered or reports violations; that is sim.checker's job.
"""

from __future__ import annotations

from dataclasses import dataclass

from coordinator.core.topology import Topology
from sim.history import Event
from sim.world.truth import quorum_cliques, quorum_members

STATIC_CUT_FAULTS = frozenset({"cut", "oneway", "isolate", "partition", "ring", "bridge"})
"""Fault kinds that only change link state, once at start and once at end."""


@dataclass
class QuorumLoss:
    """Since when (virtual time) one DC has been outside every quorum clique; None: it is in one."""

    lost_links_since: float | None = None
    """Over the links alone (every DC may vote)."""
    lost_own_since: float | None = None
    """Over the DC's OWN outgoing links alone: even if every other link worked, no quorum
    clique could contain it. Its own failed reads show this (first-hand); any other loss
    of quorum it learns from a peer's published row, one publication later."""
    lost_live_since: float | None = None
    """Over LIVE DCs only (Consul has a leader and a replica runs)."""
    cut_from_side_since: float | None = None
    """Outside every quorum clique while some quorum clique (the other side) exists."""


class GroundTruth:
    """The world's real state as the history records it; see the module docstring."""

    def __init__(self, topo: Topology) -> None:
        self.topo = topo
        self.down_links: set[tuple[str, str]] = set()
        self.degraded_links: set[tuple[str, str]] = set()
        self.no_leader: set[str] = set()
        self.stopped: dict[str, set[str]] = {name: set() for name in topo.names}
        self.known_replicas: dict[str, set[str]] = {name: set() for name in topo.names}
        self.active_faults: dict[int, str] = {}
        self.last_disturbance = 0.0
        """Last heal, degradation, Consul leader change or replica stop/start: evidence of a
        quorum is only expected to be stable some time after it."""
        self.members_links = frozenset(topo.names)
        self.members_live = frozenset(topo.names)
        self.loss: dict[str, QuorumLoss] = {name: QuorumLoss() for name in topo.names}
        self._own_quorum: dict[tuple[str, frozenset[tuple[str, str]]], bool] = {}

    # -- events ----------------------------------------------------------------------------

    def on_replica(self, dc: str, replica: str, role: object, now: float) -> bool:
        """A replica reported (its `role` says whether it is down or paused). Returns True
        when the replica is new or started/stopped: the configuration changed."""
        new = replica not in self.known_replicas[dc]
        self.known_replicas[dc].add(replica)
        was_stopped = replica in self.stopped[dc]
        if role in ("down", "paused"):
            self.stopped[dc].add(replica)
        else:
            self.stopped[dc].discard(replica)
        if was_stopped != (replica in self.stopped[dc]) or new:
            self.last_disturbance = now
            return True
        return False

    def on_link(self, event: Event, now: float) -> None:
        link = (str(event["from"]), str(event["to"]))
        if event.get("up") or event.get("delay") or event.get("loss") or link in self.degraded_links:
            self.last_disturbance = now
        if event.get("up"):
            self.down_links.discard(link)
        else:
            self.down_links.add(link)
        if event.get("delay") or event.get("loss"):
            self.degraded_links.add(link)
        else:
            self.degraded_links.discard(link)

    def on_consul(self, event: Event, now: float) -> None:
        self.last_disturbance = now
        if event.get("leader"):
            self.no_leader.discard(str(event["dc"]))
        else:
            self.no_leader.add(str(event["dc"]))

    def on_fault(self, event: Event) -> None:
        if event.get("phase") == "start":
            self.active_faults[int(event["id"])] = str(event["fault"])
        else:
            self.active_faults.pop(int(event["id"]), None)

    # -- derived ---------------------------------------------------------------------------

    def _alive(self) -> set[str]:
        out = set()
        for name in self.topo.names:
            if name in self.no_leader:
                continue
            known = self.known_replicas[name]
            if known and known <= self.stopped[name]:
                continue
            out.add(name)
        return out

    def recompute(self, now: float) -> tuple[frozenset[str], frozenset[str]]:
        """Quorum membership over the links and over live DCs, as (links, live); updates
        every DC's `loss` (a "since" starts at `now` and holds until the DC is back)."""
        links = quorum_members(self.topo, self.down_links)
        live = quorum_members(self.topo, self.down_links, self._alive())
        any_side = bool(links)
        for name, loss in self.loss.items():
            if self._own_links_allow_quorum(name):
                loss.lost_own_since = None
            elif loss.lost_own_since is None:
                loss.lost_own_since = now
            if name in links:
                loss.lost_links_since = None
                loss.cut_from_side_since = None
            else:
                if loss.lost_links_since is None:
                    loss.lost_links_since = now
                if any_side and loss.cut_from_side_since is None:
                    loss.cut_from_side_since = now
            if name in live:
                loss.lost_live_since = None
            elif loss.lost_live_since is None:
                loss.lost_live_since = now
        self.members_links, self.members_live = links, live
        return links, live

    def _own_links_allow_quorum(self, name: str) -> bool:
        """Whether some quorum clique could contain `name` if only its own outgoing links
        (its reads of other DCs) were as they are and every other link worked."""
        own = frozenset((src, dst) for src, dst in self.down_links if src == name)
        key = (name, own)
        if key not in self._own_quorum:
            self._own_quorum[key] = name in quorum_members(self.topo, own)
        return self._own_quorum[key]

    def minority_partition(self, links: frozenset[str], now: float, settle: float) -> bool:
        """True in a settled MINORITY partition: faults are active and all are static link
        cuts, no link is degraded, every Consul has a leader and every replica runs, the last
        disturbance is at least `settle` old, and exactly one quorum clique exists (`links`
        being its members) with some DC outside it."""
        static = all(kind in STATIC_CUT_FAULTS for kind in self.active_faults.values())
        clean = not self.degraded_links and not self.no_leader and not any(self.stopped.values())
        minority = False
        settled = now - self.last_disturbance >= settle
        if self.active_faults and static and clean and settled and links:
            cliques = quorum_cliques(self.topo, self.down_links)
            minority = len(cliques) == 1 and len(links) < len(self.topo.names)
        return minority
