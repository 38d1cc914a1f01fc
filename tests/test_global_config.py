"""`global_locks` in topology.yaml: defaults, durations, and file:line errors."""

from __future__ import annotations

import pytest

from coordinator.config.errors import ConfigError
from coordinator.config.load import load_topology_text
from coordinator.core.topology import GlobalLockSpec

BASE = """cluster: prod
datacenters:
  dc1: {}
  dc2: {}
  dc3: {}
"""


def _issues(text: str) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load_topology_text(text, "t.yaml")
    return [i.format() for i in err.value.issues]


def test_locks_parse_with_defaults_and_durations() -> None:
    text = BASE + "global_locks:\n  email-sender:\n    lease: 4s\n    margin: 600ms\n  other: {}\n  third:\n"
    topo = load_topology_text(text, "t.yaml").topology
    assert topo.global_locks == (
        GlobalLockSpec("email-sender", lease=4.0, margin=0.6),
        GlobalLockSpec("other"),
        GlobalLockSpec("third"),
    )


def test_no_section_means_no_locks() -> None:
    assert load_topology_text(BASE, "t.yaml").topology.global_locks == ()
    assert load_topology_text(BASE + "global_locks:\n", "t.yaml").topology.global_locks == ()


def test_errors_carry_file_and_line() -> None:
    issues = _issues(BASE + "global_locks:\n  a/b: {}\n")
    assert any("t.yaml:7" in i and "not a valid lock name" in i for i in issues), issues
    issues = _issues(BASE + "global_locks:\n  x:\n    lease: 1s\n")
    assert any("t.yaml:7" in i and "lease must exceed" in i for i in issues), issues
    issues = _issues(BASE + "global_locks:\n  x:\n    margin: 1ms\n")
    assert any("t.yaml:7" in i and "max_drift" in i for i in issues), issues
    issues = _issues(BASE + "global_locks:\n  x:\n    lase: 3s\n")
    assert any("t.yaml:8" in i and "lase" in i for i in issues), issues
    issues = _issues(BASE + "global_locks:\n  x:\n    lease: soon\n")
    assert any("t.yaml:8" in i for i in issues), issues
    issues = _issues(BASE + "global_locks: [a]\n")
    assert any("t.yaml:6" in i and "mapping" in i for i in issues), issues


def test_dump_round_trips_locks() -> None:
    from coordinator.config.dump import dump_topology

    text = BASE + "global_locks:\n  email-sender:\n    lease: 4s\n    margin: 600ms\n"
    topo = load_topology_text(text, "t.yaml").topology
    assert load_topology_text(dump_topology(topo), "d.yaml").topology == topo
