"""Writing a Topology back as YAML that `load_topology` reads back to an equal Topology."""

from __future__ import annotations

from dataclasses import fields

import yaml

from coordinator.config.durations import format_duration
from coordinator.config.schema import FRACTION_TIMERS
from coordinator.core.topology import Topology


def dump_topology(topo: Topology) -> str:
    """Every key explicit (no reliance on defaults); durations as "500ms"/"1.5s" strings."""
    timers: dict[str, object] = {}
    for f in fields(topo.timers):
        value = getattr(topo.timers, f.name)
        timers[f.name] = value if f.name in FRACTION_TIMERS else format_duration(value)
    doc: dict[str, object] = {
        "cluster": topo.cluster,
        "datacenters": {dc.name: {"weight": dc.weight, "witness": dc.witness} for dc in topo.datacenters},
        "tie_breaker": topo.tie_breaker,
        "timers": timers,
        "catch_up": {
            "hook": None if topo.catch_up.hook is None else list(topo.catch_up.hook),
            "wait_for_admin": topo.catch_up.wait_for_admin,
            "copy_prefixes": list(topo.catch_up.copy_prefixes),
        },
    }
    if topo.global_locks:
        doc["global_locks"] = {
            lock.name: {
                f.name: format_duration(getattr(lock, f.name)) for f in fields(lock) if f.name != "name"
            }
            for lock in topo.global_locks
        }
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, allow_unicode=False)
