"""Generic shape readers for the topology file: a mapping, a `name -> spec` mapping, a
boolean, a list of strings. Each reports every problem to the sink at the offending
node's line and returns None (or a failure flag) instead of raising; schema.py and
global_locks.py build the topology's sections from them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import yaml

from coordinator.config.nodes import Entry, IssueSink, Scalars, describe, entries, known_entries

_Spec = TypeVar("_Spec")


class ShapeReader:
    def __init__(self, loader: yaml.SafeLoader, sink: IssueSink) -> None:
        self.loader = loader
        self.sink = sink
        self.scalars = Scalars(loader, sink)

    def mapping(
        self, node: yaml.Node, path: str, known: tuple[str, ...], what: str
    ) -> dict[str, Entry] | None:
        """Entries of a mapping node; null means 'all defaults' ({}); anything else is an error."""
        if isinstance(node, yaml.MappingNode):
            return known_entries(self.loader, node, path, known, self.sink)
        ok, value = self.scalars.value(node, path)
        if ok and value is None:
            return {}
        if ok:
            self.sink.error(node, path, f"must be a mapping ({what}), got {describe(value)}")
        return None

    def named(
        self,
        entry: Entry,
        path: str,
        what: str,
        read: Callable[[Entry], _Spec | None],
        *,
        if_null: str | None = None,
    ) -> list[_Spec] | None:
        """Every entry of a `name -> spec` mapping (`what`) read by `read`, or None after problems.

        Every entry is read, so each one's problems are reported. Null means no entries, or is
        the error `if_null` when that is given.
        """
        node = entry.value
        if not isinstance(node, yaml.MappingNode):
            ok, value = self.scalars.value(node, path)
            if ok and value is None:
                if if_null is None:
                    return []
                self.sink.error(node, path, if_null)
            elif ok:
                self.sink.error(node, path, f"must be a mapping of {what}, got {describe(value)}")
            return None
        specs: list[_Spec] = []
        failed = False
        for item in entries(self.loader, node, path, self.sink):
            spec = read(item)
            failed = failed or spec is None
            if spec is not None:
                specs.append(spec)
        return None if failed else specs

    def named_spec(
        self, item: Entry, path: str, bad_name: str | None, known: tuple[str, ...], what: str
    ) -> dict[str, Entry] | None:
        """The `mapping` of one entry of a `named` mapping, or None after reporting `bad_name`
        (the problem with the entry's name, if any; at the name's line) or a bad mapping."""
        if bad_name is not None:
            self.sink.error(item.key_node, path, bad_name)
            return None
        return self.mapping(item.value, path, known, what)

    def boolean(self, entry: Entry, path: str) -> bool | None:
        ok, value = self.scalars.value(entry.value, path)
        if ok and isinstance(value, bool):
            return value
        if ok:
            self.sink.error(entry.value, path, f"must be true or false, got {describe(value)}")
        return None

    def string_list(
        self, entry: Entry, path: str, example: str
    ) -> tuple[bool, list[tuple[int, yaml.Node, str]] | None]:
        """(ok, items) for a list of strings; items (index, node, value) is None when the value is null.

        Every non-string element is reported, not only the first.
        """
        node = entry.value
        if not isinstance(node, yaml.SequenceNode):
            ok, value = self.scalars.value(node, path)
            if ok and value is None:
                return True, None
            if ok:
                self.sink.error(
                    node, path, f"must be a list of strings, e.g. {example}, got {describe(value)}"
                )
            return False, None
        items: list[tuple[int, yaml.Node, str]] = []
        failed = False
        for index, item in enumerate(node.value):
            ok, value = self.scalars.value(item, f"{path}[{index}]")
            if ok and not isinstance(value, str):
                self.sink.error(item, f"{path}[{index}]", f"must be a string, got {describe(value)}")
            if not ok or not isinstance(value, str):
                failed = True
                continue
            items.append((index, item, value))
        return not failed, items
