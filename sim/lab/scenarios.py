"""The lab's built-in scenarios, in the simulator's fault vocabulary (sim.world.faults).

Times are seconds after warm-up (every DC writable). Each `LabScenario` also names its
topology (3 DCs x 2 replicas unless stated) and replica counts. A scenario file in the
simulator's YAML format (sim.scenario) can be run too: see `from_sim_scenario`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from coordinator.core.topology import CatchUp, DcSpec, Timers, Topology
from sim.scenario import Scenario
from sim.world.faults import FaultSpec


@dataclass(frozen=True)
class LabScenario:
    name: str
    description: str
    topology: Topology
    replicas: dict[str, int]
    faults: tuple[FaultSpec, ...]
    quiet_at: float | None = None


def topology(n: int, hook: tuple[str, ...] | None = None) -> Topology:
    return Topology(
        cluster="lab",
        datacenters=tuple(DcSpec(f"dc{i}") for i in range(1, n + 1)),
        timers=Timers(),
        catch_up=CatchUp(hook=hook),
    )


def _three(
    name: str, description: str, *faults: FaultSpec, hook: tuple[str, ...] | None = None
) -> LabScenario:
    topo = topology(3, hook)
    return LabScenario(name, description, topo, {d: 2 for d in topo.names}, tuple(faults))


def _cut(a: str, b: str, at: float, duration: float, oneway: bool = False) -> FaultSpec:
    return FaultSpec("cut", at=at, duration=duration, dcs=(a, b), oneway=oneway)


SCENARIOS: dict[str, LabScenario] = {}


def _add(s: LabScenario) -> None:
    SCENARIOS[s.name] = s


_add(_three("isolate-one", "dc3's bridge port goes down for 12 s, then heals and catches up",
            FaultSpec("isolate", at=1.0, duration=12.0, dcs=("dc3",))))
_add(_three("one-way", "packets dc3 -> dc1 dropped in dc1 for 12 s (iptables on one side only)",
            _cut("dc3", "dc1", 1.0, 12.0, oneway=True), _cut("dc3", "dc2", 1.0, 12.0, oneway=True)))
_add(_three("paused-leader", "dc1's leader replica SIGSTOPped for 6 s (longer than its lease), then SIGCONT",
            FaultSpec("pause", at=1.0, duration=6.0, dcs=("dc1",), replica="leader")))
_add(_three("leader-kill-partition",
            "dc3 isolated; during it dc1's leader replica is SIGKILLed (restarted 6 s later)",
            FaultSpec("isolate", at=1.0, duration=14.0, dcs=("dc3",)),
            FaultSpec("crash", at=4.0, duration=6.0, dcs=("dc1",), replica="leader")))
_add(_three("flapping", "dc3's links to dc1 and dc2 flap (cut/heal every 1.5 s) for 12 s",
            FaultSpec("flap", at=1.0, duration=12.0, dcs=("dc3", "dc1"), period=3.0),
            FaultSpec("flap", at=1.0, duration=12.0, dcs=("dc3", "dc2"), period=3.0)))
_add(_three("heal-catch-up", "dc2 isolated for 10 s; on heal it runs a 2 s catch-up hook before writing",
            FaultSpec("isolate", at=1.0, duration=10.0, dcs=("dc2",)), hook=("sleep", "2")))
_add(_three("consul-pause", "dc3's Consul process SIGSTOPped for 8 s",
            FaultSpec("consul-pause", at=1.0, duration=8.0, dcs=("dc3",))))
_add(_three("consul-kill", "dc3's Consul process SIGKILLed, restarted (empty state) 8 s later",
            FaultSpec("consul-crash", at=1.0, duration=8.0, dcs=("dc3",))))
_ring = topology(5)
_add(LabScenario("majorities-ring", "5 DCs in a ring: each sees only its two neighbours for 12 s",
                 _ring, {d: 1 for d in _ring.names}, (FaultSpec("ring", at=1.0, duration=12.0),)))
_add(LabScenario("bridge", "5 DCs: {dc1,dc2} and {dc4,dc5} see each other only through dc3 for 12 s",
                 _ring, {d: 1 for d in _ring.names},
                 (FaultSpec("bridge", at=1.0, duration=12.0, dcs=("dc3",),
                            groups=(("dc1", "dc2"), ("dc4", "dc5"))),)))

QUICK = ("isolate-one", "one-way")
"""The scenarios the test suite runs (the rest run with `python -m sim.lab run all`)."""


def from_sim_scenario(s: Scenario) -> LabScenario:
    """A simulator scenario run for real; its network delay/loss and clock drift are ignored
    (the kernel here has no tc netem; the lab's clocks are the machine's)."""
    topo = s.topology
    if topo.catch_up.hook is not None and topo.catch_up.hook[0] == "sim-catchup":
        topo = replace(topo, catch_up=CatchUp())
    return LabScenario(s.name, s.description, topo, dict(s.replicas), s.faults, s.quiet_at)
