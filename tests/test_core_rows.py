"""Rows: wire format (round trip, strict rejection) and the PeerTracker evidence rules."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coordinator.core.rows import (
    PeerTracker,
    ReachEntry,
    Row,
    RowError,
    decode_row,
    encode_row,
    row_key,
)
from coordinator.core.topology import Timers

names = st.text(min_size=1, max_size=12)
ages = st.floats(min_value=0.0, max_value=1e9, allow_nan=False, allow_infinity=False)


@st.composite
def rows(draw: st.DrawFn) -> Row:
    dc = draw(names)
    reach = draw(st.dictionaries(names.filter(lambda n: n != dc),
                                 st.builds(ReachEntry, ok=st.booleans(), age=ages), max_size=8))
    return Row(dc=dc, leader=draw(names), seq=draw(st.integers(min_value=0, max_value=2**70)),
               reach=reach, state=draw(st.text(max_size=12)))


@given(rows())
def test_round_trip(row: Row) -> None:
    data = encode_row(row)
    assert decode_row(data) == row
    assert decode_row(encode_row(decode_row(data))) == row


def test_encoding_is_compact_json_with_durations_only() -> None:
    row = Row(dc="b", leader="r1/s", seq=3, reach={"a": ReachEntry(True, 0.25)}, state="writable")
    assert json.loads(encode_row(row)) == {
        "dc": "b", "leader": "r1/s", "seq": 3, "state": "writable",
        "reach": {"a": {"ok": True, "age": 0.25}},
    }
    assert row_key("prod", "b") == "coordinator/prod/dc/b/row"


GOOD = {"dc": "b", "leader": "r", "seq": 1, "state": "s", "reach": {"a": {"ok": True, "age": 1.0}}}


@pytest.mark.parametrize("mutate", [
    lambda d: d.pop("seq"),
    lambda d: d.update(extra=1),
    lambda d: d.update(seq=-1),
    lambda d: d.update(seq=True),
    lambda d: d.update(seq=1.0),
    lambda d: d.update(seq="1"),
    lambda d: d.update(dc=""),
    lambda d: d.update(leader=None),
    lambda d: d.update(state=3),
    lambda d: d.update(reach=[]),
    lambda d: d.update(reach={"b": {"ok": True, "age": 1.0}}),
    lambda d: d["reach"]["a"].update(age=-0.1),
    lambda d: d["reach"]["a"].update(age="1"),
    lambda d: d["reach"]["a"].update(age=True),
    lambda d: d["reach"]["a"].update(ok=1),
    lambda d: d["reach"]["a"].pop("ok"),
    lambda d: d["reach"]["a"].update(ts=5),
    lambda d: d["reach"].update(a=None),
])
def test_decode_rejects_malformed_documents(mutate: object) -> None:
    doc = json.loads(json.dumps(GOOD))
    mutate(doc)  # type: ignore[operator]
    with pytest.raises(RowError):
        decode_row(json.dumps(doc).encode())


@pytest.mark.parametrize("data", [
    b"", b"null", b"[]", b"\xff\xfe", b"{", b"1" * 10,
    b'{"dc":"b","leader":"r","seq":1,"state":"s","reach":{"a":{"ok":true,"age":NaN}}}',
    b'{"dc":"b","leader":"r","seq":1,"state":"s","reach":{"a":{"ok":true,"age":Infinity}}}',
    b'{"dc":"b","leader":"r","seq":1,"state":"s","reach":{"a":{"ok":true,"age":1e400}}}',
    b'{"dc":"b","dc":"c","leader":"r","seq":1,"state":"s","reach":{}}',
    b"[" * 100_000,
    b" " * (512 * 1024 + 1),
])
def test_decode_rejects_garbage(data: bytes) -> None:
    with pytest.raises(RowError):
        decode_row(data)


@given(st.binary(max_size=200))
def test_decode_of_random_bytes_raises_only_row_error(data: bytes) -> None:
    try:
        row = decode_row(data)
    except RowError:
        return
    assert decode_row(encode_row(row)) == row


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=12,
)


@given(st.fixed_dictionaries({}, optional={
    "dc": json_values, "leader": json_values, "seq": json_values, "state": json_values,
    "reach": json_values | st.dictionaries(names, st.fixed_dictionaries(
        {}, optional={"ok": json_values, "age": json_values}), max_size=3),
}))
def test_decode_of_random_json_raises_only_row_error(doc: dict[str, object]) -> None:
    try:
        row = decode_row(json.dumps(doc).encode())
    except RowError:
        return
    assert row.seq >= 0 and all(math.isfinite(e.age) and e.age >= 0 for e in row.reach.values())


@pytest.mark.parametrize("row", [
    Row("a", "r", 1, {"b": ReachEntry(True, math.nan)}, "s"),
    Row("a", "r", 1, {"b": ReachEntry(True, -1.0)}, "s"),
    Row("a", "r", -1, {}, "s"),
    Row("a", "", 1, {}, "s"),
    Row("a", "r", 1, {"a": ReachEntry(True, 0.0)}, "s"),
])
def test_encode_refuses_invalid_rows(row: Row) -> None:
    with pytest.raises(RowError):
        encode_row(row)


# ---- PeerTracker ----------------------------------------------------------------------

TIMERS = Timers(probe_interval=0.5, probe_timeout=0.4, row_fresh=1.5, max_drift=0.0)


def row(seq: int, leader: str = "r1", reach: dict[str, ReachEntry] | None = None, dc: str = "b") -> Row:
    return Row(dc=dc, leader=leader, seq=seq, reach=reach or {}, state="writable")


def tracker(started_at: float = 0.0, timers: Timers = TIMERS) -> PeerTracker:
    return PeerTracker("a", started_at, timers)


def test_first_read_gives_no_evidence() -> None:
    t = tracker()
    t.observe_row("b", row(7), sent_at=1.0)
    assert t.evidence_time("b") is None
    assert not t.fresh("b", 1.0)
    assert t.row("b") == row(7)
    assert t.reach(1.0) == {}


def test_evidence_is_the_send_time_of_the_read_that_saw_the_old_seq() -> None:
    t = tracker()
    t.observe_row("b", row(1), sent_at=1.0)
    t.observe_row("b", row(1), sent_at=1.5)
    t.observe_row("b", row(2), sent_at=2.0)
    assert t.evidence_time("b") == 1.5
    assert t.fresh("b", 3.0) and not t.fresh("b", 3.01)
    assert t.reach(2.5) == {"b": ReachEntry(ok=True, age=1.0)}
    assert t.reach(3.5) == {"b": ReachEntry(ok=False, age=2.0)}


def test_same_seq_and_failures_give_no_evidence_and_forget_nothing() -> None:
    t = tracker()
    t.observe_row("b", row(1), sent_at=1.0)
    t.observe_row("b", row(2), sent_at=1.5)
    assert t.fresh("b", 2.0)
    for sent in (2.0, 2.5, 3.0):
        t.observe_failure("b", sent)
        assert not t.fresh("b", sent)  # a failed latest read makes the peer down at once
    assert t.reach(2.0) == {"b": ReachEntry(ok=False, age=1.0)}
    t.observe_row("b", row(2), sent_at=3.5)
    assert t.evidence_time("b") == 1.0
    assert t.fresh("b", 2.5) and not t.fresh("b", 2.6)
    t.observe_row("b", row(3), sent_at=4.0)
    assert t.evidence_time("b") == 3.5


def test_a_read_after_failures_uses_the_last_successful_read() -> None:
    t = tracker()
    t.observe_row("b", row(1), sent_at=1.0)
    t.observe_failure("b", 1.5)
    t.observe_row("b", row(5), sent_at=2.0)
    assert t.evidence_time("b") == 1.0


def test_a_new_leader_with_the_same_seq_is_a_change() -> None:
    t = tracker()
    t.observe_row("b", row(1, "r1/s1"), sent_at=1.0)
    t.observe_row("b", row(1, "r2/s2"), sent_at=1.5)
    assert t.evidence_time("b") == 1.0


def test_evidence_never_goes_backwards_and_stale_reports_are_ignored() -> None:
    t = tracker()
    t.observe_row("b", row(1), sent_at=5.0)
    t.observe_row("b", row(2), sent_at=6.0)
    t.observe_row("b", row(3), sent_at=4.0)
    t.observe_failure("b", 4.5)
    assert t.evidence_time("b") == 5.0
    assert t.row("b") == row(2) and t.fresh("b", 6.0)


def test_a_row_naming_another_dc_is_a_failure() -> None:
    t = tracker()
    t.observe_row("b", row(1, dc="c"), sent_at=1.0)
    t.observe_row("b", row(2, dc="c"), sent_at=1.5)
    assert t.evidence_time("b") is None and t.row("b") is None
    with pytest.raises(ValueError):
        t.observe_failure("a", 1.0)


def test_takeover_evidence_is_an_upper_bound_with_floors() -> None:
    t = tracker(started_at=10.0)
    assert t.takeover_evidence("m") == 10.0
    # First sighting of b: b's earlier leaders may have claimed anything up to that read.
    t.observe_row("b", row(1, reach={"m": ReachEntry(False, 9.0)}), sent_at=20.0)
    assert t.takeover_evidence("m") == pytest.approx(20.5)
    # Claim: b's row written by 30.5 (first read returning it + probe_interval) minus its age.
    t.observe_row("b", row(2, reach={"m": ReachEntry(True, 0.2)}), sent_at=30.0)
    assert t.takeover_evidence("m") == pytest.approx(30.3)
    # The same row read again later does not move the bound: it was written by 30.5.
    t.observe_row("b", row(2, reach={"m": ReachEntry(True, 0.2)}), sent_at=35.0)
    assert t.takeover_evidence("m") == pytest.approx(30.3)
    # A term change of b: its previous leader may have written rows we never read.
    t.observe_row("b", row(1, "r9", reach={}), sent_at=50.0)
    assert t.takeover_evidence("m") == pytest.approx(50.5)
    assert t.takeover_evidence("zz") == pytest.approx(50.5)


def test_takeover_claims_shrink_ages_by_drift() -> None:
    t = tracker(timers=Timers(probe_interval=0.5, max_drift=0.01))
    t.observe_row("b", row(1), sent_at=0.0)
    t.observe_row("b", row(2, reach={"m": ReachEntry(True, 10.0)}), sent_at=100.0)
    assert t.takeover_evidence("m") == pytest.approx(100.5 - 10.0 * 0.99 / 1.01)


def test_own_evidence_counts_for_takeover() -> None:
    t = tracker()
    t.observe_row("m", row(1, dc="m"), sent_at=1.0)
    t.observe_row("m", row(2, dc="m"), sent_at=100.0)
    assert t.evidence_time("m") == 1.0
    assert t.takeover_evidence("m") >= 100.0
