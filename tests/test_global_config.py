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


DURATION_HINT = 'use a number of seconds or a duration like "500ms", "1.5s", "2m"'
BAD_NAME = "is not a valid lock name (letters, digits, '.', '_', '-'; no '/')"
NOT_A_MAPPING = "must be a mapping (e.g. {lease: 3s, margin: 500ms}, or empty for defaults)"
LEASE_RULE = "lease must exceed 2 x renew_interval + request_timeout (one lost renewal is survived)"
MARGIN_RULE = "margin 0.001s is below 0.061s = 2 x max_drift x lease / (1 - max_drift)"

MESSAGE_CASES: list[tuple[str, str, list[str]]] = [
    (
        "list",
        "global_locks: [a]\n",
        ["t.yaml:6: global_locks: must be a mapping of lock name -> timers, got a list"],
    ),
    (
        "number",
        "global_locks: 5\n",
        ["t.yaml:6: global_locks: must be a mapping of lock name -> timers, got 5"],
    ),
    (
        "string",
        "global_locks: locks\n",
        ["t.yaml:6: global_locks: must be a mapping of lock name -> timers, got the string 'locks'"],
    ),
    (
        "unreadable",
        "global_locks: !custom abc\n",
        [
            "t.yaml:6: global_locks: cannot read value: "
            "could not determine a constructor for the tag '!custom'"
        ],
    ),
    (
        "bad merge",
        "global_locks:\n  <<: 5\n",
        [
            "t.yaml:7: global_locks: bad merge key: "
            "expected a mapping or list of mappings for merging, but found scalar"
        ],
    ),
    (
        "complex key",
        "global_locks:\n  ? [a]\n  : {}\n",
        ["t.yaml:7: global_locks: keys must be plain names, not lists or mappings"],
    ),
    (
        "duplicate",
        "global_locks:\n  x: {}\n  x: {lease: 4s}\n",
        ["t.yaml:8: global_locks.x: duplicate key (first defined on line 7)"],
    ),
    ("slash name", "global_locks:\n  a/b: {}\n", [f"t.yaml:7: global_locks.a/b: 'a/b' {BAD_NAME}"]),
    ("dot name", "global_locks:\n  .hidden: {}\n", [f"t.yaml:7: global_locks..hidden: '.hidden' {BAD_NAME}"]),
    ("lock a number", "global_locks:\n  x: 5\n", [f"t.yaml:7: global_locks.x: {NOT_A_MAPPING}, got 5"]),
    (
        "lock a list",
        "global_locks:\n  x: [lease]\n",
        [f"t.yaml:7: global_locks.x: {NOT_A_MAPPING}, got a list"],
    ),
    (
        "unknown key",
        "global_locks:\n  x:\n    lase: 3s\n",
        ["t.yaml:8: global_locks.x.lase: unknown key (did you mean 'lease'?)"],
    ),
    (
        "bad duration",
        "global_locks:\n  x:\n    lease: soon\n",
        [f"t.yaml:8: global_locks.x.lease: not a duration: 'soon' ({DURATION_HINT})"],
    ),
    (
        "infinite",
        "global_locks:\n  x:\n    lease: .inf\n",
        ["t.yaml:8: global_locks.x.lease: must be finite, got inf"],
    ),
    (
        "bool timer",
        "global_locks:\n  x:\n    margin: true\n",
        [f"t.yaml:8: global_locks.x.margin: must be a duration ({DURATION_HINT}), got true"],
    ),
    (
        "list timer",
        "global_locks:\n  x:\n    margin: [1]\n",
        [f"t.yaml:8: global_locks.x.margin: must be a duration ({DURATION_HINT}), got a list"],
    ),
    (
        "only a lock's first bad timer is reported",
        "global_locks:\n  x:\n    lease: soon\n    margin: never\n",
        [f"t.yaml:8: global_locks.x.lease: not a duration: 'soon' ({DURATION_HINT})"],
    ),
    (
        "zero",
        "global_locks:\n  x:\n    renew_interval: 0\n",
        ["t.yaml:7: global_locks.x: renew_interval must be > 0"],
    ),
    (
        "timeout rule",
        "global_locks:\n  x:\n    request_timeout: 600ms\n",
        ["t.yaml:7: global_locks.x: request_timeout must be < renew_interval (rounds never overlap)"],
    ),
    ("lease rule", "global_locks:\n  x:\n    lease: 1s\n", [f"t.yaml:7: global_locks.x: {LEASE_RULE}"]),
    ("margin rule", "global_locks:\n  x:\n    margin: 1ms\n", [f"t.yaml:7: global_locks.x: {MARGIN_RULE}"]),
    (
        "two rules",
        "global_locks:\n  x:\n    lease: 1s\n    request_timeout: 600ms\n",
        [
            "t.yaml:7: global_locks.x: request_timeout must be < renew_interval (rounds never overlap)",
            f"t.yaml:7: global_locks.x: {LEASE_RULE}",
        ],
    ),
    (
        "every lock is checked",
        "global_locks:\n  a/b: {}\n  x:\n    lease: 1s\n  y: {margin: 1ms}\n",
        [
            f"t.yaml:7: global_locks.a/b: 'a/b' {BAD_NAME}",
            f"t.yaml:8: global_locks.x: {LEASE_RULE}",
            f"t.yaml:10: global_locks.y: {MARGIN_RULE}",
        ],
    ),
    (
        "bad timers skip the lock rules",
        "timers: {lease: soon}\nglobal_locks:\n  x: {lease: 1s}\n",
        [f"t.yaml:6: timers.lease: not a duration: 'soon' ({DURATION_HINT})"],
    ),
]


@pytest.mark.parametrize(
    ("tail", "expected"), [(c[1], c[2]) for c in MESSAGE_CASES], ids=[c[0] for c in MESSAGE_CASES]
)
def test_every_error_message_exactly(tail: str, expected: list[str]) -> None:
    """Pins every global_locks error line (file:line: path: message) byte for byte."""
    assert _issues(BASE + tail) == expected


def test_empty_mapping_means_no_locks() -> None:
    assert load_topology_text(BASE + "global_locks: {}\n", "t.yaml").topology.global_locks == ()
