"""Reading YAML as located nodes, and typed access to them.

PyYAML's composer keeps a start mark on every node; we walk the node tree ourselves
(instead of `safe_load`) so that every value we check still knows its line. Scalars are
resolved with PyYAML's SafeConstructor, so `1`, `1.5`, `true`, `null` mean what they mean
in `safe_load`. Problems are appended to an `IssueSink` rather than raised, so one pass
reports every problem.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import yaml

from coordinator.config.errors import ConfigError, Issue


@dataclass
class IssueSink:
    """Collects errors and warnings for one file."""

    file: str
    errors: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)

    def error(self, where: yaml.Node | int | None, path: str | None, message: str) -> None:
        """Record an error at a node's line, an explicit 1-based line, or no line."""
        self.errors.append(Issue(self.file, _line(where), path, message))

    def warn(self, where: yaml.Node | int | None, path: str | None, message: str) -> None:
        self.warnings.append(Issue(self.file, _line(where), path, message))

    def raise_if_errors(self) -> None:
        if self.errors:
            raise ConfigError(self.errors)


def _line(where: yaml.Node | int | None) -> int | None:
    return where if isinstance(where, int) else line_of(where)


def line_of(node: yaml.Node | None) -> int | None:
    """1-based line where the node starts (PyYAML marks are 0-based)."""
    return None if node is None else node.start_mark.line + 1


def compose(text: str, file: str) -> tuple[yaml.Node | None, yaml.SafeLoader]:
    """Compose one YAML document into a node tree; syntax errors raise ConfigError.

    Returns (None, loader) for an empty document. The loader is returned so scalars can be
    constructed later with the same resolver rules.
    """
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = None if mark is None else mark.line + 1
        what = exc.problem or exc.context or "invalid YAML"
        if exc.problem and exc.context and exc.context_mark is not None:
            what += f" ({exc.context}; see line {exc.context_mark.line + 1})"
        raise ConfigError([Issue(file, line, None, f"YAML syntax error: {what}")]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([Issue(file, None, None, f"YAML error: {exc}")]) from None
    return node, loader


class Scalars:
    """Constructs Python values from scalar nodes, with safe_load's resolution rules."""

    def __init__(self, loader: yaml.SafeLoader, sink: IssueSink) -> None:
        self._loader = loader
        self._sink = sink

    def value(self, node: yaml.Node, path: str) -> tuple[bool, object]:
        """(ok, value). Non-scalar nodes come back as (True, node) for the caller to walk."""
        if not isinstance(node, yaml.ScalarNode):
            return True, node
        try:
            return True, self._loader.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc)
            self._sink.error(node, path, f"cannot read value: {problem}")
            return False, None
        except Exception as exc:
            # PyYAML's constructors raise plain ValueError/KeyError/... for an explicit tag
            # whose text does not fit it (`!!int abc`, `!!bool maybe`, `!!timestamp
            # 2024-13-45`): bad input, reported at its line like any other.
            tag = node.tag.replace("tag:yaml.org,2002:", "!!")
            self._sink.error(node, path, f"cannot read value as {tag}: {exc}")
            return False, None


def describe(value: object) -> str:
    """How a wrong value is shown in messages: the value for scalars, its kind otherwise."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, yaml.MappingNode):
        return "a mapping"
    if isinstance(value, yaml.SequenceNode):
        return "a list"
    if isinstance(value, int | float):
        return repr(value)
    return f"a {type(value).__name__}"


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def key_text(node: yaml.Node) -> str:
    """The key as written: `123:` is the key "123", not the int 123."""
    return node.value if isinstance(node, yaml.ScalarNode) else "<complex key>"


def suggest(key: str, known: Iterable[str]) -> str:
    match = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


@dataclass(frozen=True)
class Entry:
    key: str
    key_node: yaml.Node
    value: yaml.Node


def entries(loader: yaml.SafeLoader, node: yaml.MappingNode, path: str, sink: IssueSink) -> Iterator[Entry]:
    """The mapping's entries after `<<` merges, reporting complex and duplicate keys.

    Duplicates are reported at the second occurrence; only the first one is yielded.
    """
    try:
        loader.flatten_mapping(node)
    except yaml.YAMLError as exc:
        sink.error(node, path or None, f"bad merge key: {getattr(exc, 'problem', exc)}")
        return
    seen: dict[str, yaml.Node] = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            sink.error(key_node, path or None, "keys must be plain names, not lists or mappings")
            continue
        key = key_text(key_node)
        if key in seen:
            sink.error(
                key_node, join(path, key), f"duplicate key (first defined on line {line_of(seen[key])})"
            )
            continue
        seen[key] = key_node
        yield Entry(key, key_node, value_node)


def known_entries(
    loader: yaml.SafeLoader,
    node: yaml.MappingNode,
    path: str,
    known: Iterable[str],
    sink: IssueSink,
    ignore_prefix: str | None = None,
) -> dict[str, Entry]:
    """The mapping's entries whose keys are in `known`; unknown keys are reported with a hint.

    Keys starting with `ignore_prefix` (if given) are skipped silently.
    """
    allowed = list(known)
    out: dict[str, Entry] = {}
    for entry in entries(loader, node, path, sink):
        if ignore_prefix and entry.key.startswith(ignore_prefix):
            continue
        if entry.key in allowed:
            out[entry.key] = entry
        else:
            sink.error(entry.key_node, join(path, entry.key), f"unknown key{suggest(entry.key, allowed)}")
    return out
