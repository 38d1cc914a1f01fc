"""Valid topologies load to the expected dataclasses, round-trip, warn and explain correctly."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coordinator.config import (
    ConfigError,
    check_config_main,
    dump_topology,
    explain_topology,
    format_duration,
    load_topology,
    load_topology_report,
    load_topology_text,
)
from coordinator.config.quorum import half_split, has_quorum, minimal_quorums, threshold
from coordinator.core.timers import derive, timer_violations
from coordinator.core.topology import CatchUp, DcSpec, Timers, Topology

REPO_ROOT = Path(__file__).resolve().parent.parent

SCHEMA_EXAMPLE = """\
cluster: emails
datacenters:
  dc1: {weight: 1}
  dc2: {weight: 1}
  dc3: {weight: 1, witness: false}
tie_breaker: null
timers: {probe_interval: 500ms, probe_timeout: 400ms, lease: 1.5s, row_fresh: 2s, max_drift: 0.01,
  session_ttl: 10s, check_ttl: 1.5s, check_interval: 500ms, lock_delay: 2s, takeover_margin: 1s,
  catchup_timeout: 30s, retry_backoff_max: 5s}
catch_up: {hook: ["/usr/local/bin/replay", "--from-majority"], wait_for_admin: false,
  copy_prefixes: ["app/config/"]}
"""


def test_root_topology_is_the_3dc_demo() -> None:
    loaded = load_topology_report(REPO_ROOT / "topology.yaml")
    topo = loaded.topology
    assert loaded.warnings == ()
    assert topo.cluster == "demo"
    assert topo.names == ("dc1", "dc2", "dc3")
    assert topo.total_weight == 3
    assert topo.tie_breaker is None
    assert topo.timers == Timers()
    assert topo.catch_up == CatchUp()


def test_schema_example_from_the_brief() -> None:
    topo = load_topology_text(SCHEMA_EXAMPLE).topology
    assert topo == Topology(
        cluster="emails",
        datacenters=(DcSpec("dc1"), DcSpec("dc2"), DcSpec("dc3")),
        timers=Timers(),
        catch_up=CatchUp(hook=("/usr/local/bin/replay", "--from-majority"), copy_prefixes=("app/config/",)),
    )


def test_minimal_file_takes_every_default() -> None:
    topo = load_topology_text("cluster: c\ndatacenters:\n  dc1:\n  dc2:\n  dc3:\n").topology
    assert topo.datacenters == (DcSpec("dc1"), DcSpec("dc2"), DcSpec("dc3"))
    assert topo.timers == Timers()
    assert topo.catch_up == CatchUp()


def test_durations_numbers_and_strings_mix() -> None:
    text = (
        "cluster: c\ndatacenters: {dc1: }\ntimers:\n"
        "  probe_interval: 0.25\n  probe_timeout: 200ms\n  lease: 1\n  row_fresh: 0.75s\n"
        "  session_ttl: 1m30s\n  lock_delay: 1500ms\n  catchup_timeout: 2m\n"
    )
    t = load_topology_text(text).topology.timers
    assert (t.probe_interval, t.probe_timeout, t.lease, t.row_fresh) == (0.25, 0.2, 1.0, 0.75)
    assert (t.session_ttl, t.lock_delay, t.catchup_timeout) == (90.0, 1.5, 120.0)
    assert isinstance(t.lease, float)


def test_dc_names_keep_their_written_form() -> None:
    topo = load_topology_text("cluster: c\ndatacenters:\n  '1':\n  2:\n  eu_west-1:\n").topology
    assert topo.names == ("1", "2", "eu_west-1")


def test_merge_keys_and_extension_keys() -> None:
    text = (
        "x-defaults: &big {weight: 2}\ncluster: c\ndatacenters:\n  dc1: {<<: *big}\n  dc2:\n  dc3:\n  dc4:\n"
    )
    topo = load_topology_text(text).topology
    assert topo.dc("dc1").weight == 2
    assert topo.total_weight == 5


def test_wait_for_admin_with_hook_warns() -> None:
    text = "cluster: c\ndatacenters: {dc1: }\ncatch_up:\n  hook: [x]\n  wait_for_admin: true\n"
    loaded = load_topology_text(text, "t.yaml")
    assert loaded.topology.catch_up == CatchUp(hook=("x",), wait_for_admin=True)
    assert loaded.warnings == (
        "t.yaml:5: catch_up.wait_for_admin: ignored: a hook is configured, "
        "and the hook decides when the DC has caught up",
    )


def test_prefix_without_slash_warns() -> None:
    text = "cluster: c\ndatacenters: {dc1: }\ncatch_up:\n  copy_prefixes: [app/config]\n"
    loaded = load_topology_text(text, "t.yaml")
    assert loaded.warnings == (
        "t.yaml:4: catch_up.copy_prefixes[0]: matches every key starting with 'app/config', "
        "not just one folder; write 'app/config/' for a folder",
    )


HALF = (
    "total weight {total} can split exactly in half (e.g. {{{side}}} vs the rest), and an exact half "
    "split fences both halves; add a tie_breaker, or a witness DC that makes the total odd"
)


@pytest.mark.parametrize(
    ("dcs", "tie", "warning"),
    [
        ("  dc1:\n  dc2:\n", "", "t.yaml:2: datacenters: " + HALF.format(total=2, side="dc1")),
        ("  dc1:\n  dc2:\n", "tie_breaker: dc2\n", None),
        ("  dc1:\n  dc2:\n  w: {witness: true}\n", "", None),
        (
            "  dc1: {weight: 2}\n  dc2:\n  dc3:\n",
            "",
            "t.yaml:2: datacenters: " + HALF.format(total=4, side="dc1"),
        ),
        ("  dc1: {weight: 3}\n  dc2:\n", "", None),
        (
            "  dc1:\n  dc2:\n  w: {witness: true, weight: 2}\n",
            "",
            "t.yaml:2: datacenters: " + HALF.format(total=4, side="dc1, dc2"),
        ),
    ],
    ids=["2dc", "2dc-tie", "2dc-witness", "2-1-1", "3-1", "witness-weight-2"],
)
def test_half_split_warning(dcs: str, tie: str, warning: str | None) -> None:
    loaded = load_topology_text(f"cluster: c\ndatacenters:\n{dcs}{tie}", "t.yaml")
    assert loaded.warnings == (() if warning is None else (warning,))


def test_check_config_valid_prints_explanation_and_warnings(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("cluster: c\ndatacenters:\n  dc1:\n  dc2:\n")
    out, err = io.StringIO(), io.StringIO()
    assert check_config_main(str(path), out, err) == 0
    assert err.getvalue().splitlines() == [
        f"warning: {path}:2: datacenters: " + HALF.format(total=2, side="dc1")
    ]
    assert out.getvalue().startswith(f"{path}: valid\n")
    assert "quorum needs weight >= 2" in out.getvalue()


def test_explain_default_topology() -> None:
    text = explain_topology(load_topology(REPO_ROOT / "topology.yaml"))
    assert "total weight 3; quorum needs weight >= 2 (a strict majority)" in text
    assert "Quorum sides: any 2 of 3 DCs (dc1, dc2, dc3)." in text
    derived = derive(Timers())
    assert f"takeover_after     {format_duration(round(derived.takeover_after, 3))}:" in text
    assert f"max fence latency  {format_duration(round(derived.max_fence_latency, 3))}:" in text
    assert f"fail-over bound    {format_duration(round(derived.failover_bound, 3))}:" in text
    assert "NOT MET" not in text
    assert text.count("[ok]") == 7


def test_explain_weighted_with_witness_and_tie_breaker() -> None:
    topo = Topology(
        cluster="c",
        datacenters=(DcSpec("a", 2), DcSpec("b", 1), DcSpec("c", 1), DcSpec("w", 2, witness=True)),
        tie_breaker="w",
    )
    text = explain_topology(topo)
    assert "or exactly 3 (half) when the side includes tie-breaker w" in text
    assert "Witnesses (count toward quorum, never writable): w." in text
    assert "  {a, w}\n" in text
    assert "  {a, b, c}\n" in text


def test_quorum_rules() -> None:
    topo = Topology(
        cluster="c", datacenters=(DcSpec("a"), DcSpec("b"), DcSpec("c"), DcSpec("d")), tie_breaker="a"
    )
    assert threshold(topo) == 3
    assert has_quorum(topo, ("a", "b"))
    assert not has_quorum(topo, ("c", "d"))
    assert has_quorum(topo, ("b", "c", "d"))
    assert minimal_quorums(topo) == [("a", "b"), ("a", "c"), ("a", "d"), ("b", "c", "d")]
    assert half_split(topo) == ("a", "b")


topologies = st.builds(
    lambda cluster, specs, tie_index, hook, wait, prefixes: Topology(
        cluster=cluster,
        datacenters=tuple(DcSpec(f"dc{i}", w, witness and i > 0) for i, (w, witness) in enumerate(specs)),
        tie_breaker=None if tie_index is None else f"dc{tie_index % len(specs)}",
        catch_up=CatchUp(hook=hook, wait_for_admin=wait, copy_prefixes=prefixes),
        timers=Timers(),
    ),
    cluster=st.from_regex(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,15}", fullmatch=True),
    specs=st.lists(st.tuples(st.integers(1, 9), st.booleans()), min_size=1, max_size=7),
    tie_index=st.none() | st.integers(0, 6),
    hook=st.none() | st.lists(st.text(min_size=1), min_size=1, max_size=3).map(tuple),
    wait=st.booleans(),
    prefixes=st.lists(st.from_regex(r"[a-z]{1,8}/", fullmatch=True), max_size=3).map(tuple),
)


@given(topologies, st.floats(1.0, 37.0), st.floats(0.0, 0.2))
def test_dump_then_load_round_trips(topo: Topology, lease: float, drift: float) -> None:
    timers = Timers(
        probe_interval=lease / 3,
        probe_timeout=lease / 4,
        lease=lease,
        row_fresh=lease * 1.25,
        lock_delay=lease * 1.6,
        max_drift=drift,
    )
    assert timer_violations(timers) == []
    topo = Topology(topo.cluster, topo.datacenters, timers, topo.catch_up, topo.tie_breaker)
    assert load_topology_text(dump_topology(topo)).topology == topo


def test_dump_of_root_topology_round_trips() -> None:
    topo = load_topology(REPO_ROOT / "topology.yaml")
    assert load_topology_text(dump_topology(topo)).topology == topo


yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=10,
)
known_keys = st.sampled_from(
    [
        "cluster",
        "datacenters",
        "tie_breaker",
        "timers",
        "catch_up",
        "dc1",
        "weight",
        "witness",
        "lease",
        "hook",
        "copy_prefixes",
        "wait_for_admin",
        "max_drift",
    ]
)


@given(
    st.dictionaries(
        known_keys, yaml_values | st.dictionaries(known_keys, yaml_values, max_size=4), max_size=5
    )
)
def test_arbitrary_documents_load_or_raise_config_error(doc: dict[str, object]) -> None:
    import yaml

    text = yaml.safe_dump(doc)
    try:
        load_topology_text(text, "f.yaml")
    except ConfigError as exc:
        assert exc.lines
        assert all(line.startswith("f.yaml:") for line in exc.lines)


def test_docs_examples_load() -> None:
    """Every YAML example in docs/configuration.md that names a cluster is valid."""
    doc = (REPO_ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    blocks = [b.split("```", 1)[0] for b in doc.split("```yaml\n")[1:]]
    examples = [b for b in blocks if b.startswith("cluster:")]
    assert len(examples) == 4
    loaded = [load_topology_text(b, "doc.yaml") for b in examples]
    assert all(item.warnings == () for item in loaded)
    assert [item.topology.cluster for item in loaded] == ["emails", "orders", "ledger", "billing"]


def test_docs_derived_values_match_derive() -> None:
    """The bracketed defaults in docs/configuration.md follow the core's derive()."""
    doc = (REPO_ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    derived = derive(Timers())
    assert f"max fence latency `= row_fresh + lease` [{format_duration(derived.max_fence_latency)}]" in doc
    assert f"[{format_duration(round(derived.takeover_after, 3))}]" in doc
    assert f"[{format_duration(derived.failover_bound)}]" in doc
