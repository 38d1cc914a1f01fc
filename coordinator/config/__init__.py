"""Topology configuration: loading and validating topology.yaml, and explaining it.

Public API (stable for other modules):
- `load_topology(path) -> Topology`, raising `ConfigError` (`.lines`: every problem as
  `<file>:<line>: <dotted.path>: <message>`; `str()`: the first one).
- `load_topology_report(path) -> LoadedTopology` (topology + warning lines) and
  `load_topology_text(text, source)` for YAML held in memory.
- `explain_topology(topo) -> str` and `check_config_main(path, out, err) -> int`
  (what `coordinator check-config` runs: 0 valid, 2 invalid).
- `parse_duration` / `format_duration` for Consul-style duration strings, and
  `dump_topology(topo) -> str` which writes a file `load_topology` reads back unchanged.

See docs/configuration.md for the schema.
"""

from coordinator.config.check import check_config_main
from coordinator.config.dump import dump_topology
from coordinator.config.durations import DurationError, format_duration, parse_duration
from coordinator.config.errors import ConfigError, Issue
from coordinator.config.explain import explain_topology
from coordinator.config.load import LoadedTopology, load_topology, load_topology_report, load_topology_text

__all__ = [
    "ConfigError",
    "DurationError",
    "Issue",
    "LoadedTopology",
    "check_config_main",
    "dump_topology",
    "explain_topology",
    "format_duration",
    "load_topology",
    "load_topology_report",
    "load_topology_text",
    "parse_duration",
]
