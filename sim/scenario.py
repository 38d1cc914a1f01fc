"""Scenario files: loading and validating the YAML a `python -m sim run` reads.

Contract: `load_scenario(path)` returns a valid `Scenario` or raises `ScenarioError` whose
`.lines` hold every problem as `<file>:<line>: <dotted.path>: <message>` (the CLI prints
them and exits 2). The `topology` section is read by the same code as topology.yaml
(coordinator.config), so the two cannot drift. The format is documented in
docs/simulation.md.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import yaml

from coordinator.config.durations import HINT, DurationError, parse_duration
from coordinator.config.errors import Issue
from coordinator.config.nodes import IssueSink, Scalars, compose, describe, join, known_entries
from coordinator.config.schema import read_topology
from coordinator.core.topology import CatchUp, Topology
from sim.world.faults import HOOK_MODES, KINDS, FaultSpec

TOP_KEYS = (
    "name", "description", "topology", "replicas", "duration", "quiet_at", "network", "clock_drift",
    "hooks", "liveness_bound", "write_interval", "write_prep", "faults",
)
FAULT_KEYS = (
    "at", "kind", "for", "dc", "between", "oneway", "groups", "order", "bridge", "replica", "delay",
    "loss", "period", "rate", "mode",
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


class _Reader:
    def __init__(self, loader: yaml.SafeLoader, sink: IssueSink) -> None:
        self.loader = loader
        self.sink = sink
        self.scalars = Scalars(loader, sink)

    def value(self, node: yaml.Node, path: str) -> object:
        ok, value = self.scalars.value(node, path)
        return value if ok else _BAD

    def seconds(self, node: yaml.Node, path: str, minimum: float = 0.0) -> float | None:
        value = self.value(node, path)
        if value is _BAD:
            return None
        seconds: float
        if isinstance(value, int | float) and not isinstance(value, bool):
            seconds = float(value)
        elif isinstance(value, str):
            try:
                seconds = parse_duration(value)
            except DurationError as exc:
                self.sink.error(node, path, str(exc))
                return None
        else:
            self.sink.error(node, path, f"must be a duration ({HINT}), got {describe(value)}")
            return None
        if seconds < minimum:
            self.sink.error(node, path, f"must be at least {minimum:g}s, got {seconds:g}")
            return None
        return seconds

    def number(self, node: yaml.Node, path: str, low: float, high: float) -> float | None:
        value = self.value(node, path)
        if value is _BAD:
            return None
        if not isinstance(value, int | float) or isinstance(value, bool) or not low <= value <= high:
            self.sink.error(node, path, f"must be a number in [{low:g}, {high:g}], got {describe(value)}")
            return None
        return float(value)

    def text(self, node: yaml.Node, path: str, choices: tuple[str, ...] | None = None) -> str | None:
        value = self.value(node, path)
        if value is _BAD:
            return None
        if not isinstance(value, str) or (choices is not None and value not in choices):
            want = f"one of {', '.join(choices)}" if choices else "a string"
            self.sink.error(node, path, f"must be {want}, got {describe(value)}")
            return None
        return value

    def dc(self, node: yaml.Node, path: str, names: tuple[str, ...]) -> str | None:
        name = self.text(node, path)
        if name is not None and name not in names:
            self.sink.error(node, path, f"unknown DC {name!r}; known: {', '.join(names)}")
            return None
        return name

    def dc_list(self, node: yaml.Node, path: str, names: tuple[str, ...]) -> tuple[str, ...] | None:
        if not isinstance(node, yaml.SequenceNode):
            self.sink.error(node, path, f"must be a list of DC names, got {describe(self.value(node, path))}")
            return None
        out = [self.dc(item, f"{path}[{i}]", names) for i, item in enumerate(node.value)]
        if any(x is None for x in out):
            return None
        if len(set(out)) != len(out):
            self.sink.error(node, path, "names a DC twice")
            return None
        return tuple(x for x in out if x is not None)

    def groups(
        self, node: yaml.Node, path: str, names: tuple[str, ...]
    ) -> tuple[tuple[str, ...], ...] | None:
        if not isinstance(node, yaml.SequenceNode) or len(node.value) < 2:
            self.sink.error(node, path, "must be a list of at least two lists of DC names")
            return None
        groups = [self.dc_list(item, f"{path}[{i}]", names) for i, item in enumerate(node.value)]
        if any(g is None for g in groups):
            return None
        flat = [dc for g in groups if g is not None for dc in g]
        if len(set(flat)) != len(flat):
            self.sink.error(node, path, "a DC appears in two groups")
            return None
        return tuple(g for g in groups if g is not None)


_BAD = object()


def _fault(
    r: _Reader, node: yaml.Node, path: str, topo: Topology, replicas: dict[str, int]
) -> FaultSpec | None:
    if not isinstance(node, yaml.MappingNode):
        r.sink.error(node, path, "must be a mapping like {at: 10, kind: isolate, dc: dc1, for: 30}")
        return None
    spec = known_entries(r.loader, node, path, FAULT_KEYS, r.sink)
    names = topo.names
    for key in ("at", "kind"):
        if key not in spec:
            r.sink.error(node, join(path, key), "required key is missing")
    if "at" not in spec or "kind" not in spec:
        return None
    at = r.seconds(spec["at"].value, join(path, "at"))
    kind = r.text(spec["kind"].value, join(path, "kind"), KINDS)
    if at is None or kind is None:
        return None
    fields: dict[str, object] = {"line": node.start_mark.line + 1}
    if "for" in spec:
        fields["duration"] = r.seconds(spec["for"].value, join(path, "for"), minimum=0.001)
        if fields["duration"] is None:
            return None

    def need(key: str, read: Callable[[yaml.Node, str], object]) -> object:
        if key not in spec:
            r.sink.error(node, join(path, key), f"required for a {kind} fault")
            return None
        return read(spec[key].value, join(path, key))

    def pair() -> tuple[str, ...] | None:
        value = need("between", lambda n, p: r.dc_list(n, p, names))
        if isinstance(value, tuple) and len(value) != 2:
            r.sink.error(spec["between"].value, join(path, "between"), "must name exactly two DCs")
            return None
        return value if isinstance(value, tuple) else None

    ok = True
    if kind in ("cut", "flap"):
        dcs = pair()
        ok = dcs is not None
        fields["dcs"] = dcs
    elif kind in ("delay", "loss"):
        if "between" in spec:
            dcs = pair()
        else:
            one = need("dc", lambda n, p: r.dc(n, p, names))
            dcs = (one,) if isinstance(one, str) else None
        amount = (
            need("delay", lambda n, p: r.seconds(n, p, minimum=0.0))
            if kind == "delay" else need("loss", lambda n, p: r.number(n, p, 0.0, 1.0))
        )
        ok = dcs is not None and amount is not None
        fields["dcs"] = dcs
        fields[kind] = amount
    elif kind == "partition":
        fields["groups"] = need("groups", lambda n, p: r.groups(n, p, names))
        ok = fields["groups"] is not None
    elif kind == "ring":
        order = r.dc_list(spec["order"].value, join(path, "order"), names) if "order" in spec else ()
        if order is not None and (0 < len(order) < 4 or (not order and len(names) < 4)):
            r.sink.error(node, path, "a majorities ring needs at least 4 DCs")
            order = None
        ok = order is not None
        fields["dcs"] = order
    elif kind == "bridge":
        bridge = need("bridge", lambda n, p: r.dc(n, p, names))
        groups = need("groups", lambda n, p: r.groups(n, p, names))
        if isinstance(groups, tuple) and len(groups) != 2:
            r.sink.error(spec["groups"].value, join(path, "groups"), "a bridge joins exactly two groups")
            groups = None
        if isinstance(groups, tuple) and bridge in {dc for g in groups for dc in g}:
            r.sink.error(spec["bridge"].value, join(path, "bridge"), "the bridge DC must not be in a group")
            groups = None
        ok = isinstance(bridge, str) and groups is not None
        fields["dcs"], fields["groups"] = (bridge,), groups
    else:
        one = need("dc", lambda n, p: r.dc(n, p, names))
        ok = isinstance(one, str)
        fields["dcs"] = (one,) if isinstance(one, str) else None
        if kind == "hook-failure" and "mode" in spec:
            fields["mode"] = r.text(spec["mode"].value, join(path, "mode"), HOOK_MODES)
            ok = ok and fields["mode"] is not None
        if kind == "drift":
            drift = topo.timers.max_drift
            fields["rate"] = need("rate", lambda n, p: r.number(n, p, 1.0 - drift, 1.0 + drift))
            ok = ok and fields["rate"] is not None
    if "replica" in spec:
        which = r.text(spec["replica"].value, join(path, "replica"))
        fields["replica"] = which
        ok = ok and which is not None
        if which is not None and which not in ("leader", "follower") and isinstance(fields.get("dcs"), tuple):
            dc = fields["dcs"][0]  # type: ignore[index]
            valid = [f"{dc}-{i + 1}" for i in range(replicas.get(dc, 1))]
            if which not in valid:
                r.sink.error(spec["replica"].value, join(path, "replica"),
                             f"must be leader, follower or one of {', '.join(valid)}")
                ok = False
    if "oneway" in spec:
        value = r.value(spec["oneway"].value, join(path, "oneway"))
        if not isinstance(value, bool):
            r.sink.error(
                spec["oneway"].value, join(path, "oneway"), f"must be true or false, got {describe(value)}"
            )
            ok = False
        fields["oneway"] = value
    if "period" in spec:
        fields["period"] = r.seconds(spec["period"].value, join(path, "period"), minimum=0.01)
        ok = ok and fields["period"] is not None
    if not ok:
        return None
    return FaultSpec(kind=kind, at=at, **{k: v for k, v in fields.items() if v is not None})  # type: ignore[arg-type]


def _replicas(r: _Reader, node: yaml.Node | None, topo: Topology) -> dict[str, int] | None:
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
    r = _Reader(loader, sink)
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
                fault = _fault(r, item, f"faults[{i}]", topo, replicas or {})
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


def _network(r: _Reader, node: yaml.Node) -> NetworkSpec | None:
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


def _hooks(r: _Reader, node: yaml.Node) -> tuple[float, float] | None:
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
