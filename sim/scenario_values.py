"""Typed value readers for the nodes of a scenario file (sim.scenario, sim.scenario_faults).

Contains `ValueReader`, which turns one YAML node into a duration, a bounded number, a
string (optionally one of a set of choices), a DC name, a list of distinct DC names or a
list of disjoint DC groups; and `BAD`, the sentinel `ValueReader.value` returns for a
scalar that could not be constructed.

Contract: every reader takes the node and its dotted path and returns the value, or None
after recording the problem on the `IssueSink` as `<dotted.path>: <message>` at the node's
line. `value` is the exception: it returns the constructed scalar, the node itself for a
mapping or a list, or `BAD`. Readers never raise for bad input.
"""

from __future__ import annotations

import yaml

from coordinator.config.durations import HINT, DurationError, parse_duration
from coordinator.config.nodes import IssueSink, Scalars, describe

BAD = object()
"""Returned by `ValueReader.value` when a scalar could not be constructed (already reported)."""


class ValueReader:
    """Reads typed values from the nodes of one scenario document, reporting to `sink`."""

    def __init__(self, loader: yaml.SafeLoader, sink: IssueSink) -> None:
        self.loader = loader
        self.sink = sink
        self.scalars = Scalars(loader, sink)

    def value(self, node: yaml.Node, path: str) -> object:
        ok, value = self.scalars.value(node, path)
        return value if ok else BAD

    def seconds(self, node: yaml.Node, path: str, minimum: float = 0.0) -> float | None:
        value = self.value(node, path)
        if value is BAD:
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
        if value is BAD:
            return None
        if not isinstance(value, int | float) or isinstance(value, bool) or not low <= value <= high:
            self.sink.error(node, path, f"must be a number in [{low:g}, {high:g}], got {describe(value)}")
            return None
        return float(value)

    def text(self, node: yaml.Node, path: str, choices: tuple[str, ...] | None = None) -> str | None:
        value = self.value(node, path)
        if value is BAD:
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
