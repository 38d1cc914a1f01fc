"""Reachability rows: what a DC leader publishes about its peers, and its wire format.

A `Row` is written by the leader of DC ``dc`` to ITS OWN local KV at `row_key` every probe
round, and read by every other DC's leader through the WAN (``?dc=<dc>``, ``?consistent``).

Invariants of a valid row (enforced by `encode_row` and `decode_row` alike):

* ``dc`` and ``leader`` are non-empty strings; ``state`` is a string;
* ``seq`` is an int >= 0 (never a bool); ``(leader, seq)`` changes on every write;
* ``reach`` maps OTHER DC names (never ``dc`` itself) to a `ReachEntry` whose ``age`` is a
  finite float >= 0: seconds, measured on the writer's monotonic clock, between the
  writer's last evidence of that peer and the START of the round that published the row.

Rows carry durations only, never a timestamp: clocks of different machines are never
compared (docs/safety.md). A peer missing from ``reach`` means "never seen" (down).

``leader`` identifies the leadership TERM, not just the replica (use e.g.
``"<replica-id>/<session-id>"``): readers treat a change of ``leader`` as a term change
and become conservative about takeover (see `PeerTracker`).

Observations: `PeerTracker` turns this replica's reads of peer rows into evidence times on
THIS replica's monotonic clock (the only clock it ever compares).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from coordinator.core.topology import Timers

MAX_ROW_BYTES = 512 * 1024
"""Consul's KV value limit; anything larger cannot be a row."""

_FIELDS = frozenset({"dc", "leader", "seq", "reach", "state"})
_ENTRY_FIELDS = frozenset({"ok", "age"})


class RowError(ValueError):
    """A row is malformed. The only exception `decode_row` and `encode_row` raise."""


@dataclass(frozen=True)
class ReachEntry:
    ok: bool
    """The writer considered this peer fresh when it published."""
    age: float
    """Seconds (writer's clock) from the writer's last evidence of the peer to the publish round start."""


@dataclass(frozen=True)
class Row:
    dc: str
    leader: str
    seq: int
    reach: Mapping[str, ReachEntry]
    state: str


def row_key(cluster: str, dc: str) -> str:
    """The KV key (in DC ``dc``'s own KV) that holds DC ``dc``'s row."""
    return f"coordinator/{cluster}/dc/{dc}/row"


def _check_age(age: object, where: str) -> float:
    if isinstance(age, bool) or not isinstance(age, int | float):
        raise RowError(f"{where}: age must be a number")
    value = float(age)
    if not math.isfinite(value) or value < 0:
        raise RowError(f"{where}: age must be finite and >= 0")
    return value


def _check_name(value: object, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise RowError(f"{what} must be a non-empty string")
    return value


def _validate(row: Row) -> None:
    _check_name(row.dc, "dc")
    _check_name(row.leader, "leader")
    if not isinstance(row.state, str):
        raise RowError("state must be a string")
    if isinstance(row.seq, bool) or not isinstance(row.seq, int) or row.seq < 0:
        raise RowError("seq must be an integer >= 0")
    if not isinstance(row.reach, Mapping):
        raise RowError("reach must be a mapping")
    for name, entry in row.reach.items():
        _check_name(name, "reach key")
        if name == row.dc:
            raise RowError("reach must not contain the row's own dc")
        if not isinstance(entry, ReachEntry) or not isinstance(entry.ok, bool):
            raise RowError(f"reach[{name!r}] must be a ReachEntry with a bool ok")
        _check_age(entry.age, f"reach[{name!r}]")


def encode_row(row: Row) -> bytes:
    """Compact JSON for `row`; raises `RowError` if the row breaks an invariant."""
    _validate(row)
    doc = {
        "dc": row.dc,
        "leader": row.leader,
        "seq": row.seq,
        "state": row.state,
        "reach": {
            name: {"ok": entry.ok, "age": float(entry.age)}
            for name, entry in sorted(row.reach.items())
        },
    }
    data = _ROW_ENCODER.encode(doc).encode("utf-8")
    if len(data) > MAX_ROW_BYTES:
        raise RowError("row larger than Consul's 512 KiB value limit")
    return data


def _no_constants(name: str) -> Any:
    raise RowError(f"non-finite number {name} in row")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise RowError(f"duplicate key {key!r}")
        out[key] = value
    return out


_ROW_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False, ensure_ascii=False)
"""What ``json.dumps(doc, separators=(",", ":"), allow_nan=False, ensure_ascii=False)``
uses, built once (json.dumps builds a new encoder per call when given options)."""
_ROW_DECODER = json.JSONDecoder(parse_constant=_no_constants, object_pairs_hook=_no_duplicates)
"""What ``json.loads(text, parse_constant=..., object_pairs_hook=...)`` uses, built once."""


def _exact_fields(obj: object, fields: frozenset[str], what: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise RowError(f"{what} must be a JSON object")
    keys = set(obj)
    if keys != fields:
        missing, unknown = sorted(fields - keys), sorted(keys - fields)
        raise RowError(f"{what}: missing fields {missing}, unknown fields {unknown}")
    return obj


_DECODED: dict[bytes, Row] = {}
_DECODED_MAX = 1024


def decode_row(data: bytes) -> Row:
    """Parse and validate a row. Raises `RowError` (and nothing else) on any malformation.

    Memoised on the bytes (every peer's leader reads the same row version): the returned
    Row, its `reach` mapping included, is shared and must not be mutated.
    """
    if type(data) is bytes:
        row = _DECODED.get(data)
        if row is None:
            row = _decode_row(data)
            if len(_DECODED) >= _DECODED_MAX:
                _DECODED.clear()
            _DECODED[data] = row
        return row
    return _decode_row(data)


def _decode_row(data: bytes) -> Row:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise RowError("row data must be bytes")
    if len(data) > MAX_ROW_BYTES:
        raise RowError("row larger than Consul's 512 KiB value limit")
    try:
        text = bytes(data).decode("utf-8")
        if text.startswith("\ufeff"):  # what json.loads says before decoding
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
        doc = _ROW_DECODER.decode(text)
    except RowError:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise RowError(f"row is not valid JSON: {exc}") from None
    top = _exact_fields(doc, _FIELDS, "row")
    reach_doc = top["reach"]
    if not isinstance(reach_doc, dict):
        raise RowError("reach must be a JSON object")
    reach: dict[str, ReachEntry] = {}
    for name, entry_doc in reach_doc.items():
        entry = _exact_fields(entry_doc, _ENTRY_FIELDS, f"reach[{name!r}]")
        if not isinstance(entry["ok"], bool):
            raise RowError(f"reach[{name!r}]: ok must be a boolean")
        reach[name] = ReachEntry(ok=entry["ok"], age=_check_age(entry["age"], f"reach[{name!r}]"))
    row = Row(dc=top["dc"], leader=top["leader"], seq=top["seq"], reach=reach, state=top["state"])
    _validate(row)
    return row


@dataclass
class _Peer:
    last_id: tuple[str, int] | None = None
    """(leader, seq) of the last successful read."""
    last_sent: float | None = None
    """Send time of the last successful read."""
    evidence: float | None = None
    """Lower bound (my clock) of a moment the peer's leader was alive and wrote its row."""
    row: Row | None = None
    """The row returned by the last successful read."""
    latest_failed: bool = False
    """The latest read (by send time) failed: the peer counts as not fresh until one succeeds."""
    latest_sent: float | None = None
    """Send time of the latest read, successful or not."""
    row_written_by: float | None = None
    """Upper bound (my clock) on when `row` was written: first read returning it, + answer bound."""
    last_failed: bool = False
    """Whether the latest read (in send order) failed: a peer whose latest read failed is not fresh."""
    failed_sent: float | None = None
    """Send time of the latest failed read."""


class PeerTracker:
    """This replica's observations of its peers' rows. One per leadership term.

    Evidence rule (all times are SEND times of reads, on my monotonic clock):

    * a successful read whose ``(leader, seq)`` differs from the previous successful read's
      proves the peer wrote its row after the previous read was served, hence after that
      read's send time: the previous read's send time becomes the peer's evidence time;
    * the first read of a peer, a read showing the same ``(leader, seq)``, and a failed
      read give no evidence;
    * evidence never moves backwards.

    ``fresh(peer, now)`` iff the latest read of ``peer`` succeeded and
    ``now - evidence <= row_fresh``. Fresh-ness is a LOWER bound on recency (safe for
    deciding that I may write); requiring the latest read to have succeeded makes a cut
    visible in the very next round instead of ``row_fresh`` later (fence latency), while
    the DC lease (not a single round) decides when a DC stops writing.

    Takeover bookkeeping uses UPPER bounds instead (safe for deciding that another DC is
    gone): `takeover_evidence` is the latest moment, on my clock, at which any row I ever
    read could claim evidence of a DC, plus a floor for whatever I could have missed: the
    tracker's start (my predecessor's rows) and every term change or first sighting of a
    peer (rows of the peer's previous leader that I never read).

    Requires reads of a given peer to be reported in send order, with ``sent_at`` never
    later than the ``now`` of later calls, and only reads answered within ``probe_interval``
    of their send (the probe round's deadline; later answers must be reported as failures):
    that is the bound on when a row could have been written. An out-of-order report is
    ignored.
    """

    def __init__(self, self_dc: str, started_at: float, timers: Timers) -> None:
        """``started_at``: when this replica became DC leader (my clock); see takeover floor."""
        self.self_dc = self_dc
        self.started_at = started_at
        self.row_fresh = timers.row_fresh
        self.answer_bound = timers.probe_interval
        """A read the core accepted was served before its round's deadline <= send + probe_interval."""
        self._shrink = (1.0 - timers.max_drift) / (1.0 + timers.max_drift)
        self._peers: dict[str, _Peer] = {}
        self._claimed: dict[str, float] = {}
        self._floor = started_at

    def _peer(self, name: str) -> _Peer:
        if name == self.self_dc:
            raise ValueError("a replica does not track its own DC")
        return self._peers.setdefault(name, _Peer())

    def observe_row(self, peer: str, row: Row, sent_at: float) -> None:
        """Record a successful read of ``peer``'s row, sent at ``sent_at``.

        A row naming another DC is a misconfiguration and is recorded as a failure.
        """
        state = self._peer(peer)
        if state.last_sent is not None and sent_at < state.last_sent:
            return
        if state.failed_sent is not None and sent_at < state.failed_sent:
            return
        if row.dc != peer:
            self.observe_failure(peer, sent_at)
            return
        ident = (row.leader, row.seq)
        upper = sent_at + self.answer_bound
        if state.last_id is None or state.last_id[0] != row.leader:
            self._floor = max(self._floor, upper)
        if state.last_id != ident:
            if state.last_id is not None and state.last_sent is not None:
                previous = state.evidence
                state.evidence = state.last_sent if previous is None else max(previous, state.last_sent)
            state.row_written_by = upper
        state.last_id = ident
        state.last_sent = sent_at
        state.last_failed = False
        state.row = row
        written_by = state.row_written_by if state.row_written_by is not None else upper
        for name, entry in row.reach.items():
            claim = written_by - entry.age * self._shrink
            if claim > self._claimed.get(name, -math.inf):
                self._claimed[name] = claim
        if written_by > self._claimed.get(peer, -math.inf):
            self._claimed[peer] = written_by

    def observe_failure(self, peer: str, sent_at: float) -> None:
        """Record a failed or timed-out read: no evidence, and the peer is not fresh until a
        later read succeeds. Evidence already gathered is kept (takeover bookkeeping)."""
        state = self._peer(peer)
        if state.last_sent is not None and sent_at < state.last_sent:
            return
        state.last_failed = True
        state.failed_sent = sent_at

    def evidence_time(self, peer: str) -> float | None:
        """Latest proven-alive moment of ``peer`` (my clock), or None without evidence."""
        state = self._peers.get(peer)
        return None if state is None else state.evidence

    def fresh(self, peer: str, now: float) -> bool:
        """True iff ``peer`` has evidence no older than ``row_fresh`` at ``now``."""
        state = self._peers.get(peer)
        if state is None or state.evidence is None or state.last_failed:
            return False
        return now - state.evidence <= self.row_fresh

    def row(self, peer: str) -> Row | None:
        """The last row read from ``peer`` (fresh or not), or None."""
        state = self._peers.get(peer)
        return None if state is None else state.row

    def rows(self) -> dict[str, Row]:
        """The last row read from every peer that ever answered."""
        return {name: state.row for name, state in self._peers.items() if state.row is not None}

    def reach(self, now: float) -> dict[str, ReachEntry]:
        """The ``reach`` of the row published by the round starting at ``now``.

        Peers without evidence are omitted (unknown = down); ``ok`` is `fresh`.
        """
        out: dict[str, ReachEntry] = {}
        for name, state in sorted(self._peers.items()):
            if state.evidence is not None:
                out[name] = ReachEntry(ok=self.fresh(name, now), age=max(0.0, now - state.evidence))
        return out

    def takeover_evidence(self, dc: str) -> float:
        """The latest moment (my clock) at which some DC may have had evidence of ``dc``.

        An upper bound: the max of the tracker's floor (start, term changes, first
        sightings), my own evidence of ``dc``, and every claim about ``dc`` in any row I
        read, placed on my clock as (upper bound of the row's write time) - age / drift.
        """
        best = self._floor
        own = self.evidence_time(dc) if dc != self.self_dc else None
        if own is not None:
            best = max(best, own)
        return max(best, self._claimed.get(dc, -math.inf))
