"""Every bad topology produces exactly the expected `file:line: path: message` line.

Each case goes through `check_config_main` (what `coordinator check-config` runs) and asserts
exit code 2, no traceback and the precise stderr line, line number included.
"""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

import pytest

from coordinator.config import ConfigError, check_config_main, load_topology

GOOD_HEAD = "cluster: demo\ndatacenters:\n  dc1: {weight: 1}\n  dc2: {weight: 1}\n  dc3: {weight: 1}\n"
"""Lines 1-5 of most cases; line 6 onwards is the part under test."""
PROBE_RULE = "must be shorter than probe_interval so probe rounds do not overlap"


def run_check(tmp_path: Path, text: str, name: str = "topology.yaml") -> tuple[int, list[str], str]:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    code = check_config_main(str(path), out, err)
    lines = [line.replace(str(tmp_path) + "/", "") for line in err.getvalue().splitlines()]
    return code, lines, out.getvalue()


def assert_errors(tmp_path: Path, text: str, *expected: str) -> None:
    code, lines, out = run_check(tmp_path, text)
    assert code == 2
    assert out == ""
    assert "Traceback" not in "\n".join(lines)
    assert lines[:-1] == list(expected)
    assert lines[-1].endswith(f"invalid ({len(expected)} problem{'s' if len(expected) != 1 else ''})")


CASES: list[tuple[str, str, list[str]]] = [
    (
        "negative weight",
        "cluster: demo\ndatacenters:\n  dc1: {weight: 1}\n  dc2:\n    weight: 1\n\n  dc3:\n    weight: -1\n",
        ["topology.yaml:8: datacenters.dc3.weight: must be a positive integer, got -1"],
    ),
    (
        "zero weight",
        "cluster: demo\ndatacenters:\n  dc1: {weight: 0}\n",
        ["topology.yaml:3: datacenters.dc1.weight: must be a positive integer, got 0"],
    ),
    (
        "string weight",
        "cluster: demo\ndatacenters:\n  dc1: {weight: one}\n",
        ["topology.yaml:3: datacenters.dc1.weight: must be a positive integer, got the string 'one'"],
    ),
    (
        "fractional weight",
        "cluster: demo\ndatacenters:\n  dc1: {weight: 1.5}\n",
        ["topology.yaml:3: datacenters.dc1.weight: must be a positive integer, got 1.5"],
    ),
    (
        "bool weight",
        "cluster: demo\ndatacenters:\n  dc1: {weight: true}\n",
        ["topology.yaml:3: datacenters.dc1.weight: must be a positive integer, got true"],
    ),
    (
        "unknown key with suggestion",
        GOOD_HEAD + "timers:\n  lease: 1.5s\n  lock_dealy: 2s\n",
        ["topology.yaml:8: timers.lock_dealy: unknown key (did you mean 'lock_delay'?)"],
    ),
    (
        "unknown dc key",
        "cluster: demo\ndatacenters:\n  dc1: {weigth: 2}\n",
        ["topology.yaml:3: datacenters.dc1.weigth: unknown key (did you mean 'weight'?)"],
    ),
    (
        "unknown top-level key without close match",
        GOOD_HEAD + "zzz: 1\n",
        ["topology.yaml:6: zzz: unknown key"],
    ),
    (
        "unknown top-level key close match",
        GOOD_HEAD + "tiebreaker: dc1\n",
        ["topology.yaml:6: tiebreaker: unknown key (did you mean 'tie_breaker'?)"],
    ),
    (
        "missing cluster",
        "# comment\n\ndatacenters:\n  dc1:\n",
        ["topology.yaml:3: cluster: required key is missing"],
    ),
    (
        "missing both",
        "timers: {}\n",
        [
            "topology.yaml:1: cluster: required key is missing",
            "topology.yaml:1: datacenters: required key is missing",
        ],
    ),
    (
        "empty datacenters",
        "cluster: demo\ndatacenters: {}\n",
        ["topology.yaml:2: datacenters: must list at least one DC"],
    ),
    (
        "null datacenters",
        "cluster: demo\ndatacenters:\n",
        ["topology.yaml:2: datacenters: must list at least one DC"],
    ),
    (
        "datacenters as list",
        "cluster: demo\ndatacenters:\n  - dc1\n  - dc2\n",
        ["topology.yaml:3: datacenters: must be a mapping of DC name -> spec, got a list"],
    ),
    (
        "duplicate dc",
        "cluster: demo\ndatacenters:\n  dc1: {weight: 1}\n  dc2:\n  dc1: {weight: 2}\n",
        ["topology.yaml:5: datacenters.dc1: duplicate key (first defined on line 3)"],
    ),
    (
        "duplicate top-level key",
        GOOD_HEAD + "cluster: other\n",
        ["topology.yaml:6: cluster: duplicate key (first defined on line 1)"],
    ),
    (
        "uppercase dc name",
        "cluster: demo\ndatacenters:\n  dc1:\n  DC2:\n",
        [
            "topology.yaml:4: datacenters.DC2: 'DC2' is not a valid Consul datacenter name "
            "(only [a-z0-9-_] allowed; Consul lowercases names, write 'dc2')"
        ],
    ),
    (
        "dotted dc name",
        "cluster: demo\ndatacenters:\n  dc1:\n  eu.west:\n",
        [
            "topology.yaml:4: datacenters.eu.west: 'eu.west' is not a valid Consul datacenter name "
            "(only [a-z0-9-_] allowed)"
        ],
    ),
    (
        "dc spec not a mapping",
        "cluster: demo\ndatacenters:\n  dc1: 3\n",
        [
            "topology.yaml:3: datacenters.dc1: must be a mapping "
            "(e.g. {weight: 1, witness: false}, or empty for defaults), got 3"
        ],
    ),
    (
        "witness not bool",
        "cluster: demo\ndatacenters:\n  dc1:\n  dc2: {witness: maybe}\n",
        ["topology.yaml:4: datacenters.dc2.witness: must be true or false, got the string 'maybe'"],
    ),
    (
        "all witnesses",
        "cluster: demo\ndatacenters:\n  dc1: {witness: true}\n  dc2: {witness: true}\n",
        [
            "topology.yaml:2: datacenters: every DC is a witness, so no DC could ever be writable; "
            "set witness: false on at least one"
        ],
    ),
    (
        "unknown tie_breaker",
        "cluster: demo\ndatacenters:\n  dc1:\n  dc2:\ntie_breaker: dc3\n",
        ["topology.yaml:5: tie_breaker: names unknown DC 'dc3' (did you mean 'dc2'?); known: dc1, dc2"],
    ),
    (
        "tie_breaker not a string",
        "cluster: demo\ndatacenters:\n  dc1:\n  dc2:\ntie_breaker: [dc1]\n",
        ["topology.yaml:5: tie_breaker: must be a DC name or null, got a list"],
    ),
    (
        "tie_breaker with no DCs",
        "cluster: demo\ndatacenters: {}\ntie_breaker: dc1\n",
        [
            "topology.yaml:2: datacenters: must list at least one DC",
            "topology.yaml:3: tie_breaker: names unknown DC 'dc1'; known: ",
        ],
    ),
    (
        "tie_breaker with datacenters not a mapping",
        "cluster: demo\ndatacenters: [dc1]\ntie_breaker: dc1\n",
        ["topology.yaml:2: datacenters: must be a mapping of DC name -> spec, got a list"],
    ),
    (
        "tie_breaker checked against invalid DCs too",
        "cluster: demo\ndatacenters:\n  DC1:\n  dc2: {weight: 0}\ntie_breaker: dc1\n",
        [
            "topology.yaml:3: datacenters.DC1: 'DC1' is not a valid Consul datacenter name "
            "(only [a-z0-9-_] allowed; Consul lowercases names, write 'dc1')",
            "topology.yaml:4: datacenters.dc2.weight: must be a positive integer, got 0",
            "topology.yaml:5: tie_breaker: names unknown DC 'dc1' (did you mean 'dc2'?); known: DC1, dc2",
        ],
    ),
    (
        "cluster with slash",
        "cluster: a/b\ndatacenters: {dc1: }\n",
        [
            "topology.yaml:1: cluster: 'a/b' is not a valid KV path segment "
            "(use letters, digits, '.', '_', '-'; no '/', not starting with '.')"
        ],
    ),
    (
        "cluster dot-dot",
        "cluster: '..'\ndatacenters: {dc1: }\n",
        [
            "topology.yaml:1: cluster: '..' is not a valid KV path segment "
            "(use letters, digits, '.', '_', '-'; no '/', not starting with '.')"
        ],
    ),
    (
        "cluster not a string",
        "cluster: 42\ndatacenters: {dc1: }\n",
        ["topology.yaml:1: cluster: must be a string, got 42"],
    ),
    (
        "top level a list",
        "# header\n- cluster: demo\n",
        [
            "topology.yaml:2: the top level must be a mapping with keys "
            "cluster, datacenters, timers, catch_up, tie_breaker, global_locks, got a list"
        ],
    ),
    (
        "empty file",
        "",
        [
            "topology.yaml:1: the file is empty; expected a mapping with keys "
            "cluster, datacenters, timers, catch_up, tie_breaker, global_locks"
        ],
    ),
    (
        "yaml syntax error",
        "cluster: demo\ndatacenters:\n  dc1: {weight: 1\n  dc2:\n",
        [
            "topology.yaml:4: YAML syntax error: expected ',' or '}', but got ':' "
            "(while parsing a flow mapping; see line 3)"
        ],
    ),
    (
        "bad indentation",
        "cluster: demo\ndatacenters:\n  dc1:\n    weight: 1\n   witness: true\n",
        [
            "topology.yaml:5: YAML syntax error: expected <block end>, but found '<block mapping start>' "
            "(while parsing a block mapping; see line 3)"
        ],
    ),
    (
        "python tag refused",
        "cluster: !!python/object/apply:os.system [echo]\ndatacenters: {dc1: }\n",
        ["topology.yaml:1: cluster: must be a string, got a list"],
    ),
    (
        "garbage duration",
        GOOD_HEAD + "timers:\n  lease: fast\n",
        [
            "topology.yaml:7: timers.lease: not a duration: 'fast' (use a number of seconds or a "
            'duration like "500ms", "1.5s", "2m")'
        ],
    ),
    (
        "duration without unit",
        GOOD_HEAD + "timers:\n  lease: '1.5'\n",
        [
            "topology.yaml:7: timers.lease: missing unit in duration '1.5' "
            '(write e.g. "1.5s", or a bare number)'
        ],
    ),
    (
        "duration unknown unit",
        GOOD_HEAD + "timers:\n  lease: 2d\n",
        ["topology.yaml:7: timers.lease: unknown unit 'd' in duration '2d' (units: ns, us, ms, s, m, h)"],
    ),
    (
        "duration of wrong type",
        GOOD_HEAD + "timers:\n  lease: [1]\n",
        [
            "topology.yaml:7: timers.lease: must be a duration (use a number of seconds or a duration "
            'like "500ms", "1.5s", "2m"), got a list'
        ],
    ),
    (
        "infinite duration",
        GOOD_HEAD + "timers:\n  lease: .inf\n",
        ["topology.yaml:7: timers.lease: must be finite, got inf"],
    ),
    (
        "max_drift as string",
        GOOD_HEAD + "timers:\n  max_drift: 1%\n",
        [
            "topology.yaml:7: timers.max_drift: must be a number (a fraction, e.g. 0.01 for 1%), "
            "got the string '1%'"
        ],
    ),
    (
        "timer violation at the key's line",
        GOOD_HEAD + "timers:\n  probe_interval: 500ms\n\n  probe_timeout: 600ms\n",
        ["topology.yaml:9: timers.probe_timeout: " + PROBE_RULE],
    ),
    (
        "timer violation of a defaulted key at the timers line",
        GOOD_HEAD + "\ntimers:\n  probe_interval: 300ms\n",
        ["topology.yaml:7: timers.probe_timeout: " + PROBE_RULE],
    ),
    (
        "negative timer",
        GOOD_HEAD + "timers:\n  lease: -1s\n",
        ["topology.yaml:7: timers.lease: must be greater than 0"],
    ),
    (
        "session ttl below Consul minimum",
        GOOD_HEAD + "timers:\n  session_ttl: 5s\n",
        ["topology.yaml:7: timers.session_ttl: must be between 10s and 86400s (Consul's session TTL bounds)"],
    ),
    (
        "timers not a mapping",
        GOOD_HEAD + "timers: fast\n",
        ["topology.yaml:6: timers: must be a mapping (timer name -> duration), got the string 'fast'"],
    ),
    (
        "hook as a string",
        GOOD_HEAD + "catch_up:\n  hook: /usr/local/bin/replay\n",
        [
            "topology.yaml:7: catch_up.hook: must be a list of strings, e.g. "
            '["/usr/local/bin/replay", "--from-majority"], got the string \'/usr/local/bin/replay\''
        ],
    ),
    (
        "empty hook",
        GOOD_HEAD + "catch_up:\n  hook: []\n",
        [
            "topology.yaml:7: catch_up.hook: must be a non-empty list of strings (argv), e.g. "
            '["/usr/local/bin/replay", "--from-majority"]'
        ],
    ),
    (
        "hook element not a string",
        GOOD_HEAD + "catch_up:\n  hook:\n    - /bin/replay\n    - 3\n",
        ["topology.yaml:9: catch_up.hook[1]: must be a string, got 3"],
    ),
    (
        "hook program empty",
        GOOD_HEAD + "catch_up:\n  hook: ['', x]\n",
        ["topology.yaml:7: catch_up.hook[0]: the program to run must not be empty"],
    ),
    (
        "copy_prefixes problems, all reported",
        GOOD_HEAD + "catch_up:\n  copy_prefixes:\n    - 1\n    - /app/\n    - coordinator/demo/\n    - ''\n",
        [
            "topology.yaml:8: catch_up.copy_prefixes[0]: must be a string, got 1",
            "topology.yaml:9: catch_up.copy_prefixes[1]: KV keys have no leading '/': write 'app/'",
            "topology.yaml:10: catch_up.copy_prefixes[2]: must not overlap the coordinator's own keys "
            "under 'coordinator/'",
            "topology.yaml:11: catch_up.copy_prefixes[3]: must not be empty "
            "(that would copy the whole KV store)",
        ],
    ),
    (
        "wait_for_admin not bool",
        GOOD_HEAD + "catch_up:\n  wait_for_admin: 1\n",
        ["topology.yaml:7: catch_up.wait_for_admin: must be true or false, got 1"],
    ),
    (
        "explicit tag whose text does not fit it (PyYAML raises ValueError/KeyError there)",
        "cluster: !!int abc\ndatacenters:\n  dc1: {weight: !!bool maybe}\n  dc2: {}\n",
        [
            "topology.yaml:1: cluster: cannot read value as !!int: "
            "invalid literal for int() with base 10: 'abc'",
            "topology.yaml:3: datacenters.dc1.weight: cannot read value as !!bool: 'maybe'",
        ],
    ),
    (
        "several problems, sorted by line",
        "cluster: demo\ndatacenters:\n  dc1: {weight: 0}\n  dc2: {wieght: 1}\ntie_breaker: dc9\ntimerz: {}\n",
        [
            "topology.yaml:3: datacenters.dc1.weight: must be a positive integer, got 0",
            "topology.yaml:4: datacenters.dc2.wieght: unknown key (did you mean 'weight'?)",
            "topology.yaml:5: tie_breaker: names unknown DC 'dc9' (did you mean 'dc2'?); known: dc1, dc2",
            "topology.yaml:6: timerz: unknown key (did you mean 'timers'?)",
        ],
    ),
]


@pytest.mark.parametrize(("text", "expected"), [(c[1], c[2]) for c in CASES], ids=[c[0] for c in CASES])
def test_bad_topology_reports_exact_lines(tmp_path: Path, text: str, expected: list[str]) -> None:
    assert_errors(tmp_path, text, *expected)


def test_missing_file(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    missing = tmp_path / "nope.yaml"
    assert check_config_main(str(missing), out, err) == 2
    assert err.getvalue().splitlines()[0] == f"{missing}: cannot read: No such file or directory"


def test_directory_is_unreadable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_topology(tmp_path)
    assert info.value.lines == [f"{tmp_path}: cannot read: Is a directory"]


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_bytes(b"cluster: \xff\xfe\n")
    with pytest.raises(ConfigError) as info:
        load_topology(path)
    assert info.value.lines[0].startswith(f"{path}: cannot read: not UTF-8 text")


def test_config_error_str_is_first_line(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("cluster: a/b\ndatacenters:\n  dc1: {weight: 0}\n")
    with pytest.raises(ConfigError) as info:
        load_topology(path)
    assert len(info.value.lines) == 2
    assert str(info.value) == info.value.lines[0]
    assert str(info.value).startswith(f"{path}:1: cluster:")


DOC_EXAMPLE = (
    "cluster: demo\n# DCs\ndatacenters:\n  dc1: {weight: 1}\n  dc2: {weight: 1}\n  dc3:\n    weight: -1\n"
    "timers:\n  lock_dealy: 2s\n\n\ntie_breaker: dc4\n"
)


def test_docs_error_example_is_real_output(tmp_path: Path) -> None:
    """The error block in docs/configuration.md is exactly what check-config prints."""
    doc = (Path(__file__).resolve().parent.parent / "docs" / "configuration.md").read_text(encoding="utf-8")
    block = doc.split("sorted by line:\n\n```\n", 1)[1].split("```", 1)[0].splitlines()
    code, lines, _ = run_check(tmp_path, DOC_EXAMPLE)
    assert code == 2
    assert lines == block


def test_tie_breaker_checked_even_when_a_dc_is_invalid(tmp_path: Path) -> None:
    assert_errors(
        tmp_path,
        "cluster: demo\ndatacenters:\n  dc1: {weight: x}\n  dc2:\ntie_breaker: dc1\n",
        "topology.yaml:3: datacenters.dc1.weight: must be a positive integer, got the string 'x'",
    )
