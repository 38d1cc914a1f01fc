"""Running one scenario in the lab: warm up, inject faults on schedule, heal, settle.

Contract of `run_scenario`: waits (bounded) until every non-witness DC is writable, then
starts each fault at ``warm-up + at`` and ends it ``duration`` later (or at quiet), records
``fault`` start/end events around the real actions, records ``quiet`` once the last fault
ended, then waits (bounded by `settle`) until every non-witness DC is writable again and
holds `tail` seconds more. Every wait has a deadline; a flap toggles at most
``duration / (period / 2)`` times.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

from sim.lab.faults import LAB_KINDS, LinkFaults, dropped_links
from sim.lab.harness import Lab
from sim.world.faults import FaultSpec

WARMUP_TIMEOUT = 60.0


class ScenarioFailed(RuntimeError):
    """The lab could not drive the scenario (e.g. never became writable)."""


@dataclass
class _Active:
    spec: FaultSpec
    fid: int
    target: str | None = None
    task: asyncio.Task[None] | None = None
    links: list[list[str]] = field(default_factory=list)


def describe(spec: FaultSpec) -> str:
    """FaultSpec.describe for the simulator's kinds; a plain text for the lab's own."""
    try:
        return spec.describe()
    except (KeyError, IndexError):
        span = "" if spec.duration is None else f" for {spec.duration:g}s"
        return f"{spec.kind} {','.join(spec.dcs)}{span}"


class Driver:
    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.links = LinkFaults(lab.net, lab.rec)

    async def start(self, spec: FaultSpec, fid: int) -> _Active:
        if spec.kind not in LAB_KINDS:
            kinds = ", ".join(LAB_KINDS)
            raise ScenarioFailed(f"fault kind {spec.kind!r} is not supported by the lab ({kinds})")
        lab, act = self.lab, _Active(spec, fid)
        dc = spec.dcs[0] if spec.dcs else ""
        if spec.kind in ("cut", "partition", "ring", "bridge", "flap"):
            act.links = [list(link) for link in sorted(dropped_links(spec, lab.net.dcs))]
        elif spec.kind == "isolate":
            act.links = [list(link) for link in sorted(self.links.links_of(dc))]
        if spec.kind in ("crash", "pause"):
            act.target = lab.resolve(dc, spec.replica)
        desc = describe(spec) + (f" [{act.target}]" if act.target else "")
        lab.rec.emit("fault", phase="start", id=fid, fault=spec.kind, description=desc,
                     dcs=list(spec.dcs) or sorted({d for g in spec.groups for d in g}), links=act.links)
        if spec.kind in ("cut", "partition", "ring", "bridge"):
            self.links.set_drops(fid, [(a, b) for a, b in act.links], True)
        elif spec.kind == "flap":
            act.task = asyncio.create_task(self._flap(act))
        elif spec.kind == "isolate":
            self.links.set_port(fid, dc, True)
        elif spec.kind == "crash" and act.target:
            lab.kill_replica(dc, act.target)
        elif spec.kind == "pause" and act.target:
            lab.pause_replica(dc, act.target)
        elif spec.kind in ("consul-crash", "consul-pause"):
            lab.consul_down(dc, "kill" if spec.kind == "consul-crash" else "pause")
        elif spec.kind == "leader-loss":
            await lab.consul_leader(dc, False)
        return act

    async def end(self, act: _Active) -> None:
        lab, spec = self.lab, act.spec
        dc = spec.dcs[0] if spec.dcs else ""
        if act.task is not None:
            act.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await act.task
        if spec.kind in ("cut", "partition", "ring", "bridge", "flap"):
            self.links.set_drops(act.fid, [(a, b) for a, b in act.links], False)
        elif spec.kind == "isolate":
            self.links.set_port(act.fid, dc, False)
        elif spec.kind == "crash" and act.target:
            await lab.restart_replica(dc, act.target)
        elif spec.kind == "pause" and act.target:
            lab.resume_replica(dc, act.target)
        elif spec.kind in ("consul-crash", "consul-pause"):
            await lab.consul_up(dc, "kill" if spec.kind == "consul-crash" else "pause")
        elif spec.kind == "leader-loss":
            await lab.consul_leader(dc, True)
        lab.rec.emit("fault", phase="end", id=act.fid, fault=spec.kind, description=describe(spec),
                     dcs=list(spec.dcs), links=act.links)

    async def _flap(self, act: _Active) -> None:
        half = max(act.spec.period / 2, 0.2)
        limit = int((act.spec.duration or 60.0) / half) + 1
        cut = True
        for _ in range(limit):
            self.links.set_drops(act.fid, [(a, b) for a, b in act.links], cut)
            cut = not cut
            await asyncio.sleep(half)


async def run_scenario(
    lab: Lab, faults: tuple[FaultSpec, ...], quiet_at: float | None, settle: float = 60.0, tail: float = 1.0,
) -> None:
    voters = [d.name for d in lab.topo.datacenters if not d.witness]
    if await lab.wait_until(voters, True, WARMUP_TIMEOUT) is None:
        raise ScenarioFailed(f"not every DC became writable within {WARMUP_TIMEOUT:g}s of start")
    ends = [f.at + (f.duration or 0.0) for f in faults]
    quiet = quiet_at if quiet_at is not None else max(ends, default=0.0)
    plan: list[tuple[float, int, int]] = []
    for i, spec in enumerate(faults, start=1):
        plan.append((spec.at, 1, i))
        plan.append((min(spec.at + spec.duration, quiet) if spec.duration is not None else quiet, 0, i))
    plan.sort()
    driver = Driver(lab)
    active: dict[int, _Active] = {}
    base = time.monotonic()
    for when, is_start, fid in plan:
        await asyncio.sleep(max(0.0, base + when - time.monotonic()))
        if is_start:
            active[fid] = await driver.start(faults[fid - 1], fid)
        elif fid in active:
            await driver.end(active.pop(fid))
    await asyncio.sleep(max(0.0, base + quiet - time.monotonic()))
    for fid in list(active):
        await driver.end(active.pop(fid))
    lab.rec.emit("quiet")
    await lab.wait_until(voters, True, settle)
    await asyncio.sleep(tail)
