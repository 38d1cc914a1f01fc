"""Building and running worlds: one scenario, or one random exploration run.

Both return a `RunResult`; both are pure functions of their arguments (same seed, same
history). Explore runs use N DCs named dc1..dcN of weight 1, default timers, random clock
drift within `max_drift`, and a random fault schedule that stops `liveness_bound` seconds
before the end (when the run is long enough), so every run also checks liveness. Odd
seeds also turn BUGGIFY on (some local Consul replies are slowed at random); seeds that
are multiples of GLOBAL_LOCK_EVERY add one global lock (``explore-lock``, default timers)
that the DC leaders contend for, so the global-lock invariants are explored too.
"""

from __future__ import annotations

from dataclasses import replace

from coordinator.core.topology import CatchUp, DcSpec, GlobalLockSpec, Timers, Topology
from sim.checker import default_liveness_bound
from sim.scenario import DEFAULT_HOOK, Scenario
from sim.world.randomfaults import random_schedule
from sim.world.world import RunResult, World, WorldConfig


def scenario_world(scenario: Scenario, seed: int, record: bool = True) -> World:
    config = WorldConfig(
        replicas=scenario.replicas,
        seed=seed,
        base_delay=scenario.network.delay,
        jitter=scenario.network.jitter,
        base_loss=scenario.network.loss,
        clock_drift=scenario.clock_drift,
        hook_duration=scenario.hook_duration,
        write_interval=scenario.write_interval,
        write_prep=scenario.write_prep,
        liveness_bound=scenario.liveness_bound,
        scenario=scenario.name,
        record=record,
    )
    world = World(scenario.topology, config)
    quiet = scenario.effective_quiet_at()
    world.schedule_faults(scenario.faults, quiet if quiet < scenario.duration else None)
    return world


def run_scenario(scenario: Scenario, seed: int, record: bool = True) -> RunResult:
    return scenario_world(scenario, seed, record).run(scenario.duration)


GLOBAL_LOCK_EVERY = 5
"""Explore runs whose seed is a multiple of this contend for one global lock."""
EXPLORE_LOCK = "explore-lock"


def explore_topology(dcs: int, timers: Timers | None = None, global_lock: bool = False) -> Topology:
    return Topology(
        cluster="sim",
        datacenters=tuple(DcSpec(f"dc{i + 1}") for i in range(dcs)),
        timers=timers or Timers(),
        catch_up=CatchUp(hook=DEFAULT_HOOK),
        global_locks=(GlobalLockSpec(EXPLORE_LOCK),) if global_lock else (),
    )


def explore_world(dcs: int, duration: float, seed: int, replicas: int = 2, record: bool = True,
                  faults: bool = True) -> World:
    topo = explore_topology(dcs, global_lock=seed % GLOBAL_LOCK_EVERY == 0)
    config = WorldConfig(
        replicas={name: replicas for name in topo.names},
        seed=seed,
        record=record,
        buggify=faults and seed % 2 == 1,
    )
    world = World(topo, config)
    bound = default_liveness_bound(topo)
    window = duration - bound if duration - bound > 30.0 else duration
    if faults:
        schedule = random_schedule(
            world.rng, topo.names, config.replicas, window, topo.timers.max_drift
        )
        world.schedule_faults(schedule, window if window < duration else None)
    return world


def run_explore(dcs: int, duration: float, seed: int, replicas: int = 2, record: bool = True) -> RunResult:
    return explore_world(dcs, duration, seed, replicas, record).run(duration)


def with_replicas(scenario: Scenario, count: int) -> Scenario:
    return replace(scenario, replicas={name: count for name in scenario.topology.names})
