"""Random fault schedules for `python -m sim explore` (Jepsen-style nemeses, seeded).

`random_schedule(rng, dcs, replicas, duration, ...)` returns FaultSpecs whose start times
fall in [warmup, fault_window) and that all end by `fault_window`; the world declares
`quiet` at `fault_window` and the liveness checks take over. Pure given the rng.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

from sim.world.faults import FaultSpec

WEIGHTS: tuple[tuple[str, int], ...] = (
    ("cut", 4), ("oneway", 2), ("isolate", 4), ("partition", 2), ("ring", 1), ("bridge", 1),
    ("flap", 2), ("delay", 2), ("loss", 2), ("crash", 3), ("pause", 3), ("leader-loss", 2),
    ("drift", 1), ("hook-failure", 1), ("admin-fence", 1),
)


def _pick_two(rng: random.Random, dcs: tuple[str, ...]) -> tuple[str, str]:
    a, b = rng.sample(dcs, 2)
    return a, b


def one_fault(
    rng: random.Random,
    dcs: tuple[str, ...],
    replicas: Mapping[str, int],
    at: float,
    duration: float,
    max_drift: float,
) -> FaultSpec | None:
    """One random fault starting at `at` and lasting `duration`; None if it does not apply."""
    total = sum(w for _, w in WEIGHTS)
    roll = rng.random() * total
    kind = WEIGHTS[-1][0]
    for name, weight in WEIGHTS:
        roll -= weight
        if roll < 0:
            kind = name
            break
    if len(dcs) < 2 and kind not in ("crash", "pause", "leader-loss", "drift", "hook-failure", "admin-fence"):
        return None
    if kind in ("cut", "oneway"):
        return FaultSpec("cut", at, duration, dcs=_pick_two(rng, dcs), oneway=kind == "oneway")
    if kind == "isolate":
        return FaultSpec("isolate", at, duration, dcs=(rng.choice(dcs),))
    if kind == "partition":
        shuffled = list(dcs)
        rng.shuffle(shuffled)
        cut = rng.randint(1, len(shuffled) - 1)
        return FaultSpec("partition", at, duration, groups=(tuple(shuffled[:cut]), tuple(shuffled[cut:])))
    if kind == "ring":
        if len(dcs) < 4:
            return None
        order = list(dcs)
        rng.shuffle(order)
        return FaultSpec("ring", at, duration, dcs=tuple(order))
    if kind == "bridge":
        if len(dcs) < 3:
            return None
        order = list(dcs)
        rng.shuffle(order)
        bridge, rest = order[0], order[1:]
        cut = rng.randint(1, len(rest) - 1)
        return FaultSpec("bridge", at, duration, dcs=(bridge,), groups=(tuple(rest[:cut]), tuple(rest[cut:])))
    if kind == "flap":
        return FaultSpec("flap", at, duration, dcs=_pick_two(rng, dcs), period=rng.uniform(0.5, 8.0),
                         oneway=rng.random() < 0.3)
    if kind == "delay":
        delay = rng.choice((0.05, 0.2, 0.5, 2.0))
        return FaultSpec("delay", at, duration, dcs=_pick_two(rng, dcs), delay=delay)
    if kind == "loss":
        loss = rng.choice((0.05, 0.2, 0.5, 0.9))
        return FaultSpec("loss", at, duration, dcs=_pick_two(rng, dcs), loss=loss)
    dc = rng.choice(dcs)
    which = rng.choice(("leader", "leader", "follower")) if replicas.get(dc, 1) > 1 else "leader"
    if kind == "crash":
        return FaultSpec("crash", at, duration, dcs=(dc,), replica=which)
    if kind == "pause":
        return FaultSpec("pause", at, min(duration, rng.uniform(1.0, 30.0)), dcs=(dc,), replica=which)
    if kind == "drift":
        return FaultSpec("drift", at, None, dcs=(dc,), replica=which,
                         rate=1.0 + rng.uniform(-max_drift, max_drift))
    if kind == "leader-loss":
        return FaultSpec("leader-loss", at, min(duration, rng.uniform(1.0, 20.0)), dcs=(dc,))
    if kind == "admin-fence":
        return FaultSpec("admin-fence", at, duration, dcs=(dc,), replica=which)
    return FaultSpec("hook-failure", at, duration, dcs=(dc,), mode=rng.choice(("fail", "hang")))


def random_schedule(
    rng: random.Random,
    dcs: tuple[str, ...],
    replicas: Mapping[str, int],
    fault_window: float,
    max_drift: float,
    warmup: float = 15.0,
    mean_gap: float = 20.0,
    max_duration: float = 60.0,
) -> list[FaultSpec]:
    """Faults arriving as a Poisson process (mean gap `mean_gap`), each ending by `fault_window`."""
    out: list[FaultSpec] = []
    t = warmup + rng.expovariate(1.0 / mean_gap)
    while t < fault_window - 1.0:
        duration = min(rng.uniform(1.0, max_duration), fault_window - t)
        spec = one_fault(rng, dcs, replicas, round(t, 3), round(duration, 3), max_drift)
        if spec is not None:
            out.append(spec)
        t += rng.expovariate(1.0 / mean_gap)
    return out
