"""The fault schedule of a scenario file: one `faults:` entry -> a `FaultSpec`.

Contains `FAULT_KEYS` (the keys a fault entry may have) and `read_fault`, which checks one
entry against its kind (sim.world.faults.KINDS): the DCs, pair, groups, ring order or
bridge it needs, the amounts (delay, loss, drift rate within the topology's max_drift),
the hook-failure mode, the target replica (leader, follower or `<dc>-<n>` within the DC's
replica count), `oneway` and `period`.

Contract: `read_fault` returns a `FaultSpec` (its `line` is the entry's line in the file)
or None after recording every problem it found on the reader's sink as
`<file>:<line>: faults[i].<key>: <message>`. It does not check that the fault starts
before the run ends; sim.scenario.read_scenario does.
"""

from __future__ import annotations

from collections.abc import Callable

import yaml

from coordinator.config.nodes import describe, join, known_entries
from coordinator.core.topology import Topology
from sim.scenario_values import ValueReader
from sim.world.faults import HOOK_MODES, KINDS, FaultSpec

FAULT_KEYS = (
    "at", "kind", "for", "dc", "between", "oneway", "groups", "order", "bridge", "replica", "delay",
    "loss", "period", "rate", "mode",
)


def read_fault(
    r: ValueReader, node: yaml.Node, path: str, topo: Topology, replicas: dict[str, int]
) -> FaultSpec | None:
    """One fault entry at `path` (e.g. ``faults[2]``); `replicas` are the per-DC counts."""
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
