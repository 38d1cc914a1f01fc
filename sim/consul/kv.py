"""Consul's KV table for one datacenter (mirrors agent/consul/state/kvs.go).

Pure: every mutating call receives the Raft index `idx` it would commit at and reports
whether it changed anything; the owner (`model.Datacenter`) allocates indexes and only
commits `idx` when something changed. Entries are immutable (`KVEntry` is frozen and
replaced on write), so readers can hand them out without copying.

Invariants (checked by `Datacenter.check_invariants`):
- 0 < CreateIndex <= ModifyIndex <= table_index;
- `table_index` = highest index of any KV write or tombstone (never decreases);
- a key has at most one Session (structurally);
- LockIndex counts lock acquisitions since the key's last plain write: an acquisition by a
  new holder sets it to previous + 1 (1 for a new key), a re-acquisition by the holder, a
  release and a session invalidation keep it, and a plain/CAS write (PUT, txn `set`/`cas`)
  resets it to 0 while keeping the Session (kvsSetTxn stores the request's entry, whose
  LockIndex is 0). So a held key may show LockIndex 0, and LockIndex never decreases
  across acquisitions only.

Change journal for blocking queries: every key written or tombstoned is recorded until
`take_changes()`; at most `MAX_TRACKED_CHANGES` keys are kept, beyond that the journal
collapses to "everything changed". A rolled-back transaction may leave recorded keys
behind (a harmless spurious wake-up), but a real change is never left out.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass, replace

from sim.consul.durations import go_quote
from sim.consul.errors import ConsulError

MAX_LOCK_DELAY = 60.0
"""Consul's structs.MaxLockDelay: a session's LockDelay is capped at 60s when applied."""


@dataclass(frozen=True, slots=True)
class KVEntry:
    key: str
    value: bytes | None
    flags: int
    lock_index: int
    session: str
    create_index: int
    modify_index: int

    def same_content(self, other: KVEntry) -> bool:
        """Consul's DirEntry.Equal: a write equal to the stored entry is skipped (no index bump)."""
        return (
            self.lock_index == other.lock_index
            and self.key == other.key
            and self.flags == other.flags
            and (self.value or b"") == (other.value or b"")
            and self.session == other.session
        )


_JournalItem = tuple[str, str, object]

MAX_TRACKED_CHANGES = 4096
"""Above this many distinct changed keys between two `take_changes()`, report "all"."""


class KVStore:
    """Entries, tombstones (graveyard) and lock-delays of one DC."""

    def __init__(self) -> None:
        self.entries: dict[str, KVEntry] = {}
        self._sorted_keys: list[str] = []
        self.tombstones: dict[str, int] = {}
        self.lock_delays: dict[str, float] = {}
        self.table_index = 0
        self._journal: list[_JournalItem] | None = None
        self._changed: set[str] = set()
        self._changed_all = False

    # ---- transactions (undo journal) ------------------------------------------------

    def begin(self) -> None:
        self._journal = [("index", "", self.table_index)]

    def commit(self) -> None:
        self._journal = None

    def rollback(self) -> None:
        journal, self._journal = self._journal or [], None
        for kind, key, old in reversed(journal):
            if kind == "entry":
                self._put_raw(key, old if isinstance(old, KVEntry) else None)
            elif kind == "tomb":
                if isinstance(old, int):
                    self.tombstones[key] = old
                else:
                    self.tombstones.pop(key, None)
            elif kind == "index" and isinstance(old, int):
                self.table_index = old

    # ---- raw storage ------------------------------------------------------------------

    def _put_raw(self, key: str, entry: KVEntry | None) -> None:
        if entry is None:
            if key in self.entries:
                del self.entries[key]
                pos = bisect.bisect_left(self._sorted_keys, key)
                del self._sorted_keys[pos]
            return
        if key not in self.entries:
            bisect.insort(self._sorted_keys, key)
        self.entries[key] = entry

    def _record(self, key: str) -> None:
        if not self._changed_all:
            self._changed.add(key)
            if len(self._changed) > MAX_TRACKED_CHANGES:
                self._changed_all = True
                self._changed = set()

    def take_changes(self) -> tuple[bool, frozenset[str]]:
        """(everything, keys) changed since the last call, and resets the journal.
        `everything` True means the key set overflowed: treat every key as changed."""
        out = (self._changed_all, frozenset(self._changed))
        self._changed_all = False
        self._changed = set()
        return out

    def _write(self, key: str, entry: KVEntry | None, idx: int) -> None:
        self._record(key)
        if self._journal is not None:
            self._journal.append(("entry", key, self.entries.get(key)))
        self._put_raw(key, entry)
        self.table_index = max(self.table_index, idx)

    def _tombstone(self, key: str, idx: int) -> None:
        self._record(key)
        if self._journal is not None:
            self._journal.append(("tomb", key, self.tombstones.get(key)))
        self.tombstones[key] = idx
        self.table_index = max(self.table_index, idx)

    # ---- reads ----------------------------------------------------------------------

    def get(self, key: str) -> KVEntry | None:
        return self.entries.get(key)

    def keys_with_prefix(self, prefix: str) -> list[str]:
        lo = bisect.bisect_left(self._sorted_keys, prefix)
        out: list[str] = []
        for k in self._sorted_keys[lo:]:
            if not k.startswith(prefix):
                break
            out.append(k)
        return out

    def list(self, prefix: str) -> tuple[int, list[KVEntry]]:
        """KVSList: entries under prefix and the index Consul reports for them."""
        entries = [self.entries[k] for k in self.keys_with_prefix(prefix)]
        if prefix == "":
            return self.table_index, entries
        lindex = max((e.modify_index for e in entries), default=0)
        for tkey, tidx in self.tombstones.items():
            if tidx > lindex and tkey.startswith(prefix):
                lindex = tidx
        return (lindex if lindex else self.table_index), entries

    def get_index(self, key: str) -> int:
        """KVS.Get's reply index: the entry's ModifyIndex, else the table index."""
        entry = self.entries.get(key)
        return entry.modify_index if entry is not None else self.table_index

    def lock_delay_active(self, key: str, now: float) -> bool:
        expires = self.lock_delays.get(key)
        return expires is not None and expires > now

    # ---- writes (state store semantics, kvs.go) -------------------------------------

    def set(self, idx: int, key: str, value: bytes | None, flags: int,
            session: str | None = None, lock_index: int = 0) -> KVEntry:
        """kvsSetTxn: stores the given entry, carrying over only CreateIndex and (when
        session=None, i.e. a plain write that ignores locks) the existing Session.
        LockIndex is what the caller passes: 0 for a plain/CAS write (Consul's HTTP handler
        and txn set/cas send LockIndex 0), the lock's own for lock/unlock. A write equal to
        the stored entry (DirEntry.Equal) is skipped and returns the stored entry."""
        existing = self.entries.get(key)
        new = KVEntry(
            key=key,
            value=value,
            flags=flags,
            lock_index=lock_index,
            session=session if session is not None else (existing.session if existing else ""),
            create_index=existing.create_index if existing else idx,
            modify_index=idx,
        )
        if existing is not None and existing.same_content(new):
            return existing
        self._write(key, new, idx)
        return new

    def cas(self, idx: int, key: str, value: bytes | None, flags: int, cas: int) -> KVEntry | None:
        """kvsSetCASTxn: cas=0 means create-only; otherwise ModifyIndex must match."""
        existing = self.entries.get(key)
        if cas == 0 and existing is not None:
            return None
        if cas != 0 and (existing is None or existing.modify_index != cas):
            return None
        return self.set(idx, key, value, flags)

    def lock(self, idx: int, key: str, value: bytes | None, flags: int, session: str,
             session_exists: Callable[[str], bool]) -> KVEntry | None:
        """kvsLockTxn (lock-delay is checked by the caller BEFORE this, as Consul's preApply does)."""
        if session == "":
            raise ConsulError("missing session")
        if not session_exists(session):
            raise ConsulError(f"invalid session {go_quote(session)}")
        existing = self.entries.get(key)
        if existing is None:
            lock_index = 1
        elif existing.session == session:
            lock_index = existing.lock_index
        elif existing.session != "":
            return None
        else:
            lock_index = existing.lock_index + 1
        return self.set(idx, key, value, flags, session=session, lock_index=lock_index)

    def unlock(self, idx: int, key: str, value: bytes | None, flags: int, session: str) -> KVEntry | None:
        """kvsUnlockTxn: only the holder may release; LockIndex is kept, Session cleared."""
        if session == "":
            raise ConsulError("missing session")
        existing = self.entries.get(key)
        if existing is None or existing.session != session:
            return None
        return self.set(idx, key, value, flags, session="", lock_index=existing.lock_index)

    def delete(self, idx: int, key: str) -> bool:
        if key not in self.entries:
            return False
        self._tombstone(key, idx)
        self._write(key, None, idx)
        return True

    def delete_cas(self, idx: int, key: str, cas: int) -> bool:
        """kvsDeleteCASTxn: a missing key reports success (Consul returns `entry == nil`)."""
        existing = self.entries.get(key)
        if existing is None:
            return True
        if existing.modify_index != cas:
            return False
        return self.delete(idx, key)

    def delete_tree(self, idx: int, prefix: str) -> bool:
        keys = self.keys_with_prefix(prefix)
        if not keys:
            return False
        self._tombstone(prefix, idx)
        for k in keys:
            self._write(k, None, idx)
        return True

    def release_session(self, idx: int, session: str, delete: bool, delay_until: float | None) -> bool:
        """Session invalidation (deleteSessionTxn): release or delete held keys, arm lock-delay."""
        held = [e for e in self.entries.values() if e.session == session]
        for e in held:
            if delete:
                self.delete(idx, e.key)
            else:
                self._write(e.key, replace(e, session="", modify_index=idx), idx)
            if delay_until is not None:
                self.lock_delays[e.key] = delay_until
        return bool(held)

    def expire_lock_delays(self, now: float) -> None:
        for key in [k for k, t in self.lock_delays.items() if t <= now]:
            del self.lock_delays[key]
