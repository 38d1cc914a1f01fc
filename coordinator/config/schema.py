"""Turning a located YAML node tree into a `Topology`, reporting every problem.

Contract: `read_topology(node, loader, sink)` returns a Topology only when `sink.errors`
stayed empty; otherwise it returns None and every problem is in the sink, each at the line
of the offending key or value. Key names are taken from the dataclasses in
coordinator.core.topology, so the file schema cannot drift from the types.
"""

from __future__ import annotations

import math
import re
from dataclasses import fields

import yaml

from coordinator.config.durations import HINT, DurationError, parse_duration
from coordinator.config.global_locks import read_global_locks
from coordinator.config.nodes import (
    Entry,
    IssueSink,
    describe,
    join,
    known_entries,
    suggest,
)
from coordinator.config.quorum import half_split
from coordinator.config.shapes import ShapeReader
from coordinator.core.timers import timer_violations
from coordinator.core.topology import CatchUp, DcSpec, Timers, Topology

TOP_KEYS = tuple(f.name for f in fields(Topology))
REQUIRED_TOP_KEYS = ("cluster", "datacenters")
DC_KEYS = tuple(f.name for f in fields(DcSpec) if f.name != "name")
TIMER_KEYS = tuple(f.name for f in fields(Timers))
CATCH_UP_KEYS = tuple(f.name for f in fields(CatchUp))
FRACTION_TIMERS = frozenset({"max_drift"})
"""Timers that are plain fractions, not durations."""

DC_NAME = re.compile(r"[a-z0-9_-]+")
"""Consul's own rule (agent/config/builder.go): `^[a-z0-9_-]+$`."""
CLUSTER_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
"""One KV path segment: no '/', no leading '.', so `coordinator/<cluster>/` is unambiguous."""
OWN_PREFIX = "coordinator/"
HOOK_EXAMPLE = '["/usr/local/bin/replay", "--from-majority"]'
EXTENSION_PREFIX = "x-"
"""Top-level keys starting with this are ignored (a place for YAML anchors, as in docker-compose)."""

def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class _Reader(ShapeReader):
    def __init__(self, loader: yaml.SafeLoader, sink: IssueSink) -> None:
        super().__init__(loader, sink)
        self.dc_names: list[str] | None = None
        """Every DC name written under `datacenters`, valid or not (None if there is no mapping)."""

    def topology(self, node: yaml.Node | None) -> Topology | None:
        keys = ", ".join(TOP_KEYS)
        if node is None:
            self.sink.error(1, None, f"the file is empty; expected a mapping with keys {keys}")
            return None
        if not isinstance(node, yaml.MappingNode):
            _, value = self.scalars.value(node, "")
            self.sink.error(
                node, None, f"the top level must be a mapping with keys {keys}, got {describe(value)}"
            )
            return None
        top = known_entries(self.loader, node, "", TOP_KEYS, self.sink, ignore_prefix=EXTENSION_PREFIX)
        for key in REQUIRED_TOP_KEYS:
            if key not in top:
                self.sink.error(node, key, "required key is missing")
        cluster = self.cluster(top["cluster"]) if "cluster" in top else None
        dcs = self.datacenters(top["datacenters"]) if "datacenters" in top else None
        tie = self.tie_breaker(top.get("tie_breaker"))
        timers = self.timers(top.get("timers"), node)
        catch_up = self.catch_up(top["catch_up"]) if "catch_up" in top else CatchUp()
        locks = read_global_locks(self, top["global_locks"], timers) if "global_locks" in top else ()
        if self.sink.errors or cluster is None or dcs is None or timers is None or catch_up is None:
            return None
        if locks is None:
            return None
        topo = Topology(
            cluster=cluster,
            datacenters=dcs,
            timers=timers,
            catch_up=catch_up,
            tie_breaker=tie,
            global_locks=locks,
        )
        self.warn_half_split(topo, top["datacenters"])
        return topo

    def cluster(self, entry: Entry) -> str | None:
        ok, value = self.scalars.value(entry.value, "cluster")
        if not ok:
            return None
        if not isinstance(value, str):
            self.sink.error(entry.value, "cluster", f"must be a string, got {describe(value)}")
            return None
        if not CLUSTER_NAME.fullmatch(value):
            self.sink.error(
                entry.value,
                "cluster",
                f"{value!r} is not a valid KV path segment (use letters, digits, '.', '_', '-'; "
                "no '/', not starting with '.')",
            )
            return None
        return value

    def datacenters(self, entry: Entry) -> tuple[DcSpec, ...] | None:
        names: list[str] = []
        if isinstance(entry.value, yaml.MappingNode):
            self.dc_names = names

        def dc(item: Entry) -> DcSpec | None:
            names.append(item.key)
            return self.dc(item)

        specs = self.named(entry, "datacenters", "DC name -> spec", dc, if_null="must list at least one DC")
        if specs is None:
            return None
        if not specs and not self.sink.errors:
            self.sink.error(entry.value, "datacenters", "must list at least one DC")
            return None
        if specs and all(spec.witness for spec in specs):
            self.sink.error(
                entry.key_node,
                "datacenters",
                "every DC is a witness, so no DC could ever be writable; set witness: false on at least one",
            )
        return tuple(specs)

    def dc(self, item: Entry) -> DcSpec | None:
        path = join("datacenters", item.key)
        name = item.key
        bad_name = None
        if not DC_NAME.fullmatch(name):
            hint = (
                f"; Consul lowercases names, write {name.lower()!r}"
                if DC_NAME.fullmatch(name.lower())
                else ""
            )
            bad_name = f"{name!r} is not a valid Consul datacenter name (only [a-z0-9-_] allowed{hint})"
        spec = self.named_spec(
            item, path, bad_name, DC_KEYS, "e.g. {weight: 1, witness: false}, or empty for defaults"
        )
        if spec is None:
            return None
        weight, witness = 1, False
        if "weight" in spec:
            ok, value = self.scalars.value(spec["weight"].value, join(path, "weight"))
            if not ok:
                return None
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                self.sink.error(
                    spec["weight"].value,
                    join(path, "weight"),
                    f"must be a positive integer, got {describe(value)}",
                )
                return None
            weight = value
        if "witness" in spec:
            flag = self.boolean(spec["witness"], join(path, "witness"))
            if flag is None:
                return None
            witness = flag
        return DcSpec(name=name, weight=weight, witness=witness)

    def tie_breaker(self, entry: Entry | None) -> str | None:
        if entry is None:
            return None
        ok, value = self.scalars.value(entry.value, "tie_breaker")
        if not ok or value is None:
            return None
        if not isinstance(value, str):
            self.sink.error(entry.value, "tie_breaker", f"must be a DC name or null, got {describe(value)}")
            return None
        names = self.dc_names
        if names is not None and value not in names:
            self.sink.error(
                entry.value,
                "tie_breaker",
                f"names unknown DC {value!r}{suggest(value, names)}; known: {', '.join(names)}",
            )
            return None
        return value

    def timers(self, entry: Entry | None, top: yaml.Node) -> Timers | None:
        if entry is None:
            spec: dict[str, Entry] | None = {}
        else:
            spec = self.mapping(entry.value, "timers", TIMER_KEYS, "timer name -> duration")
        if spec is None:
            return None
        values: dict[str, float] = {}
        failed = False
        for key, item in spec.items():
            value = self.timer_value(item, join("timers", key), fraction=key in FRACTION_TIMERS)
            failed = failed or value is None
            if value is not None:
                values[key] = value
        if failed:
            return None
        timers = Timers(**values)
        violations = timer_violations(timers)
        for name, message in violations:
            where = spec[name].key_node if name in spec else (entry.key_node if entry is not None else top)
            self.sink.error(where, join("timers", name), message)
        return None if violations else timers

    def timer_value(self, item: Entry, path: str, *, fraction: bool) -> float | None:
        ok, value = self.scalars.value(item.value, path)
        if not ok:
            return None
        if _number(value):
            assert isinstance(value, int | float)
            if not math.isfinite(value):
                self.sink.error(item.value, path, f"must be finite, got {describe(value)}")
                return None
            return float(value)
        if isinstance(value, str) and not fraction:
            try:
                return parse_duration(value)
            except DurationError as exc:
                self.sink.error(item.value, path, str(exc))
                return None
        if fraction:
            self.sink.error(
                item.value, path, f"must be a number (a fraction, e.g. 0.01 for 1%), got {describe(value)}"
            )
        else:
            self.sink.error(item.value, path, f"must be a duration ({HINT}), got {describe(value)}")
        return None

    def catch_up(self, entry: Entry) -> CatchUp | None:
        spec = self.mapping(entry.value, "catch_up", CATCH_UP_KEYS, "hook, wait_for_admin, copy_prefixes")
        if spec is None:
            return None
        ok, hook = self.hook(spec["hook"]) if "hook" in spec else (True, None)
        wait: bool | None = False
        if "wait_for_admin" in spec:
            wait = self.boolean(spec["wait_for_admin"], "catch_up.wait_for_admin")
        prefixes: tuple[str, ...] | None = ()
        if "copy_prefixes" in spec:
            prefixes = self.prefixes(spec["copy_prefixes"])
        if not ok or wait is None or prefixes is None:
            return None
        if hook is not None and wait:
            self.sink.warn(
                spec["wait_for_admin"].key_node,
                "catch_up.wait_for_admin",
                "ignored: a hook is configured, and the hook decides when the DC has caught up",
            )
        return CatchUp(hook=hook, wait_for_admin=wait, copy_prefixes=prefixes)

    def hook(self, entry: Entry) -> tuple[bool, tuple[str, ...] | None]:
        """(ok, argv); null means no hook."""
        path = "catch_up.hook"
        ok, items = self.string_list(entry, path, HOOK_EXAMPLE)
        if not ok or items is None:
            return ok, None
        if not items:
            self.sink.error(
                entry.value, path, f"must be a non-empty list of strings (argv), e.g. {HOOK_EXAMPLE}"
            )
            return False, None
        if not items[0][2]:
            self.sink.error(items[0][1], f"{path}[0]", "the program to run must not be empty")
            return False, None
        return True, tuple(value for _, _, value in items)

    def prefixes(self, entry: Entry) -> tuple[str, ...] | None:
        """The copy_prefixes; null means none. Each must be a relative KV prefix outside ours."""
        ok, items = self.string_list(entry, "catch_up.copy_prefixes", '["app/config/"]')
        failed = not ok
        for index, node, prefix in items or []:
            path = f"catch_up.copy_prefixes[{index}]"
            problem = None
            if not prefix:
                problem = "must not be empty (that would copy the whole KV store)"
            elif prefix.startswith("/"):
                problem = f"KV keys have no leading '/': write {prefix.lstrip('/')!r}"
            elif prefix.startswith(OWN_PREFIX) or OWN_PREFIX.startswith(prefix):
                problem = f"must not overlap the coordinator's own keys under {OWN_PREFIX!r}"
            elif not prefix.endswith("/"):
                self.sink.warn(
                    node,
                    path,
                    f"matches every key starting with {prefix!r}, not just one folder; "
                    f"write {prefix + '/'!r} for a folder",
                )
            if problem is not None:
                self.sink.error(node, path, problem)
                failed = True
        return None if failed else tuple(prefix for _, _, prefix in items or [])

    def warn_half_split(self, topo: Topology, entry: Entry) -> None:
        if topo.tie_breaker is not None:
            return
        split = half_split(topo)
        if split is not None:
            side = ", ".join(split)
            self.sink.warn(
                entry.key_node,
                "datacenters",
                f"total weight {topo.total_weight} can split exactly in half (e.g. {{{side}}} vs the rest), "
                "and an exact half split fences both halves; "
                "add a tie_breaker, or a witness DC that makes the total odd",
            )


def read_topology(node: yaml.Node | None, loader: yaml.SafeLoader, sink: IssueSink) -> Topology | None:
    """Validate and convert; see the module docstring for the contract."""
    return _Reader(loader, sink).topology(node)
