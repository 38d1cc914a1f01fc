"""Scenario files: loading and validating the YAML a `python -m sim run` reads.

Contains the `Scenario` model (with `NetworkSpec`), `ScenarioError`, the top-level reader
(`read_scenario`: name, topology, replicas, duration, network, hooks, timings, drift mode)
and the loaders (`load_scenario`, `load_scenario_text`, `scenario_dir`). The fault schedule
is read by sim.scenario_faults and single values by sim.scenario_values; `FAULT_KEYS` is
re-exported from here.

Contract: `load_scenario(path)` returns a valid `Scenario` or raises `ScenarioError` whose
`.lines` hold every problem as `<file>:<line>: <dotted.path>: <message>` (the CLI prints
them and exits 2). The `topology` section is read by the same code as topology.yaml
(coordinator.config), so the two cannot drift. The format is documented in
docs/simulation.md.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

import yaml

from coordinator.config.errors import Issue
from coordinator.config.nodes import IssueSink, compose, join, known_entries
from coordinator.config.schema import read_topology
from coordinator.core.topology import CatchUp, Topology
from sim.scenario_faults import FAULT_KEYS, read_fault
from sim.scenario_values import ValueReader
from sim.world.faults import FaultSpec

__all__ = [
    "DEFAULT_HOOK", "DRIFT_MODES", "FAULT_KEYS", "TOP_KEYS", "NetworkSpec", "Scenario", "ScenarioError",
    "load_scenario", "load_scenario_text", "read_scenario", "scenario_dir",
]

TOP_KEYS = (
    "name", "description", "topology", "replicas", "duration", "quiet_at", "network", "clock_drift",
    "hooks", "liveness_bound", "write_interval", "write_prep", "faults",
)
DRIFT_MODES = ("random", "none")
DEFAULT_HOOK = ("sim-catchup",)
"""The catch-up hook the simulator runs (simulated) when a scenario configures none."""


@dataclass(frozen=True)
class NetworkSpec:
    delay: float = 0.005
    jitter: float = 0.002
    loss: float = 0.0


@dataclass(frozen=True)
class Scenario:
    name: str
    topology: Topology
    replicas: dict[str, int]
    duration: float
    faults: tuple[FaultSpec, ...] = ()
    description: str = ""
    quiet_at: float | None = None
    """When faults stop (liveness checks start); None: when the last fault ends."""
    network: NetworkSpec = field(default_factory=NetworkSpec)
    clock_drift: str = "random"
    hook_duration: tuple[float, float] = (0.2, 2.0)
    liveness_bound: float | None = None
    write_interval: float = 1.0
    write_prep: float = 0.02
    """Upper bound of the application's think time between a yes and its write."""
    source: str = "<scenario>"

    def effective_quiet_at(self) -> float:
        if self.quiet_at is not None:
            return self.quiet_at
        ends = [f.at + (f.duration or 0.0) for f in self.faults]
        return max(ends, default=0.0)


class ScenarioError(ValueError):
    def __init__(self, issues: list[Issue]) -> None:
        self.lines = [i.format() for i in sorted(issues, key=lambda i: i.line or 0)]
        super().__init__(self.lines[0] if self.lines else "invalid scenario")


def _replicas(r: ValueReader, node: yaml.Node | None, topo: Topology) -> dict[str, int] | None:
    if node is None:
        return {name: 2 for name in topo.names}
    if isinstance(node, yaml.MappingNode):
        out = {name: 2 for name in topo.names}
        for key, entry in known_entries(r.loader, node, "replicas", topo.names, r.sink).items():
            count = r.number(entry.value, join("replicas", key), 1, 3)
            if count is None or count != int(count):
                return None
            out[key] = int(count)
        return out
    count = r.number(node, "replicas", 1, 3)
    if count is None or count != int(count):
        if count is not None:
            r.sink.error(node, "replicas", "must be a whole number of replicas (1-3)")
        return None
    return {name: int(count) for name in topo.names}


def read_scenario(node: yaml.Node | None, loader: yaml.SafeLoader, sink: IssueSink) -> Scenario | None:
    r = ValueReader(loader, sink)
    if not isinstance(node, yaml.MappingNode):
        sink.error(node, None, "a scenario must be a mapping with keys " + ", ".join(TOP_KEYS))
        return None
    top = known_entries(loader, node, "", TOP_KEYS, sink)
    for key in ("name", "topology", "duration"):
        if key not in top:
            sink.error(node, key, "required key is missing")
    if sink.errors:
        return None
    name = r.text(top["name"].value, "name")
    inner = IssueSink(sink.file)
    topo = read_topology(top["topology"].value, loader, inner)
    for issue in inner.errors:
        sink.errors.append(replace(issue, path=join("topology", issue.path or "").rstrip(".")))
    duration = r.seconds(top["duration"].value, "duration", minimum=1.0)
    if topo is None or name is None or duration is None:
        return None
    if topo.catch_up == CatchUp():
        topo = replace(topo, catch_up=CatchUp(hook=DEFAULT_HOOK))
    replicas = _replicas(r, top["replicas"].value if "replicas" in top else None, topo)
    faults: list[FaultSpec] = []
    if "faults" in top:
        fnode = top["faults"].value
        if isinstance(fnode, yaml.SequenceNode):
            for i, item in enumerate(fnode.value):
                fault = read_fault(r, item, f"faults[{i}]", topo, replicas or {})
                if fault is not None:
                    if fault.at > duration:
                        sink.error(item, f"faults[{i}].at", f"starts after the run ends ({duration:g}s)")
                    faults.append(fault)
        elif r.value(fnode, "faults") is not None:
            sink.error(fnode, "faults", "must be a list of faults")
    extra: dict[str, object] = {}
    for key in ("quiet_at", "liveness_bound"):
        if key in top:
            extra[key] = r.seconds(top[key].value, key)
    if "write_prep" in top:
        extra["write_prep"] = r.seconds(top["write_prep"].value, "write_prep")
    if "write_interval" in top:
        extra["write_interval"] = r.seconds(top["write_interval"].value, "write_interval", minimum=0.01)
    if "description" in top:
        extra["description"] = r.text(top["description"].value, "description")
    if "clock_drift" in top:
        extra["clock_drift"] = r.text(top["clock_drift"].value, "clock_drift", DRIFT_MODES)
    if "network" in top:
        extra["network"] = _network(r, top["network"].value)
    if "hooks" in top:
        extra["hook_duration"] = _hooks(r, top["hooks"].value)
    if sink.errors or replicas is None or any(v is None for v in extra.values()):
        return None
    return Scenario(name=name, topology=topo, replicas=replicas, duration=duration, faults=tuple(faults),
                    source=sink.file, **extra)  # type: ignore[arg-type]


def _network(r: ValueReader, node: yaml.Node) -> NetworkSpec | None:
    if not isinstance(node, yaml.MappingNode):
        r.sink.error(node, "network", "must be a mapping {delay, jitter, loss}")
        return None
    spec = known_entries(r.loader, node, "network", ("delay", "jitter", "loss"), r.sink)
    delay = r.seconds(spec["delay"].value, "network.delay") if "delay" in spec else 0.005
    jitter = r.seconds(spec["jitter"].value, "network.jitter") if "jitter" in spec else 0.002
    loss = r.number(spec["loss"].value, "network.loss", 0.0, 0.99) if "loss" in spec else 0.0
    if delay is None or jitter is None or loss is None:
        return None
    return NetworkSpec(delay, jitter, loss)


def _hooks(r: ValueReader, node: yaml.Node) -> tuple[float, float] | None:
    if not isinstance(node, yaml.MappingNode):
        r.sink.error(node, "hooks", "must be a mapping {duration: [min, max]}")
        return None
    spec = known_entries(r.loader, node, "hooks", ("duration",), r.sink)
    if "duration" not in spec:
        return (0.2, 2.0)
    value = spec["duration"].value
    if not isinstance(value, yaml.SequenceNode) or len(value.value) != 2:
        r.sink.error(value, "hooks.duration", "must be [min, max] durations")
        return None
    low = r.seconds(value.value[0], "hooks.duration[0]")
    high = r.seconds(value.value[1], "hooks.duration[1]")
    if low is None or high is None:
        return None
    if high < low:
        r.sink.error(value, "hooks.duration", "max must not be below min")
        return None
    return (low, high)


def load_scenario_text(text: str, source: str = "<scenario>") -> Scenario:
    """Validate YAML text; raises ScenarioError listing every problem."""
    from coordinator.config.errors import ConfigError

    try:
        node, loader = compose(text, source)
    except ConfigError as exc:
        raise ScenarioError(exc.issues) from None
    sink = IssueSink(source)
    scenario = read_scenario(node, loader, sink)
    if sink.errors or scenario is None:
        raise ScenarioError(sink.errors or [Issue(source, None, None, "invalid scenario")])
    return scenario


def load_scenario(path: str | os.PathLike[str]) -> Scenario:
    source = os.fspath(path)
    try:
        with open(source, encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError([Issue(source, None, None, f"cannot read: {exc}")]) from None
    return load_scenario_text(text, source)


def scenario_dir() -> str:
    return os.path.join(os.path.dirname(__file__), "scenarios")
