"""Loading topology.yaml: the entry points other modules use.

`load_topology(path)` returns a validated Topology or raises ConfigError whose `.lines`
are every problem as `<file>:<line>: <dotted.path>: <what is wrong>`. Warnings (legal but
risky settings) never raise; get them with `load_topology_report`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from coordinator.config.errors import ConfigError, Issue
from coordinator.config.nodes import IssueSink, compose
from coordinator.config.schema import read_topology
from coordinator.core.topology import Topology


@dataclass(frozen=True)
class LoadedTopology:
    """A valid topology plus the warnings found while loading it (formatted lines)."""

    topology: Topology
    warnings: tuple[str, ...]
    source: str


def load_topology_text(text: str, source: str = "<string>") -> LoadedTopology:
    """Validate YAML text; `source` is the file name used in messages. Raises ConfigError."""
    node, loader = compose(text, source)
    sink = IssueSink(source)
    topo = read_topology(node, loader, sink)
    sink.raise_if_errors()
    assert topo is not None, "read_topology returns None only after reporting an error"
    warnings = tuple(w.format() for w in sorted(sink.warnings, key=lambda w: w.line or 0))
    return LoadedTopology(topology=topo, warnings=warnings, source=source)


def load_topology_report(path: str | os.PathLike[str]) -> LoadedTopology:
    """Read and validate a topology file, keeping warnings. Raises ConfigError."""
    source = os.fspath(path)
    try:
        with open(source, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise ConfigError([Issue(source, None, None, f"cannot read: {exc.strerror or exc}")]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [Issue(source, None, None, f"cannot read: not UTF-8 text ({exc.reason})")]
        ) from None
    return load_topology_text(text, source)


def load_topology(path: str | os.PathLike[str]) -> Topology:
    """Read and validate a topology file. Raises ConfigError listing every problem."""
    return load_topology_report(path).topology
