"""KV verbs shared by `PUT/DELETE /v1/kv` (one op) and `/v1/txn` (up to 64 ops, atomic).

Mirrors agent/consul/state/txn.go (`txnKVS`) and txn_endpoint.go (`preCheck`): pre-checks
(missing key, lock-delay) fail the whole transaction before anything is applied; then all
ops run at ONE index and any error rolls everything back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sim.consul.durations import go_quote
from sim.consul.errors import ConsulError
from sim.consul.kv import KVEntry, KVStore

WRITE_VERBS = frozenset({"set", "cas", "lock", "unlock", "delete", "delete-cas", "delete-tree"})
READ_VERBS = frozenset({"get", "get-or-empty", "get-tree", "check-index", "check-session",
                        "check-not-exists"})
MAX_TXN_OPS = 64


@dataclass(frozen=True, slots=True)
class TxnOp:
    verb: str
    key: str
    value: bytes | None = None
    flags: int = 0
    index: int = 0
    session: str = ""


@dataclass
class TxnOutcome:
    ok: bool = True
    """For a single KV op: the boolean Consul's KVS.Apply returns."""
    results: list[tuple[KVEntry, bool]] | None = None
    """(entry, include_value) per result, in op order; None when rolled back."""
    errors: list[tuple[int, str]] | None = None
    """(OpIndex, What) when the transaction was rolled back."""
    error: str | None = None
    """For a single KV op: the RPC error (HTTP 500)."""


def _one(kv: KVStore, idx: int, op: TxnOp, session_exists: Callable[[str], bool]
         ) -> tuple[list[tuple[KVEntry, bool]], bool]:
    """Runs one op; returns (results, ok). Raises ConsulError with txn.go's message."""
    q = go_quote(op.key)
    verb = op.verb
    if verb == "set":
        return [(kv.set(idx, op.key, op.value, op.flags), False)], True
    if verb == "cas":
        entry = kv.cas(idx, op.key, op.value, op.flags, op.index)
        if entry is None:
            raise _Soft(f"failed to set key {q}, index is stale")
        return [(entry, False)], True
    if verb == "lock":
        entry = kv.lock(idx, op.key, op.value, op.flags, op.session, session_exists)
        if entry is None:
            raise _Soft(f"failed to lock key {q}, lock is already held")
        return [(entry, False)], True
    if verb == "unlock":
        entry = kv.unlock(idx, op.key, op.value, op.flags, op.session)
        if entry is None:
            raise _Soft(f"failed to unlock key {q}, lock isn't held, or is held by another session")
        return [(entry, False)], True
    if verb == "delete":
        kv.delete(idx, op.key)
        return [], True
    if verb == "delete-cas":
        if not kv.delete_cas(idx, op.key, op.index):
            raise _Soft(f"failed to delete key {q}, index is stale")
        return [], True
    if verb == "delete-tree":
        kv.delete_tree(idx, op.key)
        return [], True
    existing = kv.get(op.key)
    if verb == "get":
        if existing is None:
            raise ConsulError(f"key {q} doesn't exist")
        return [(existing, True)], True
    if verb == "get-or-empty":
        if existing is None:
            existing = KVEntry(op.key, None, op.flags, 0, op.session, 0, op.index)
        return [(existing, True)], True
    if verb == "get-tree":
        return [(e, True) for e in kv.list(op.key)[1]], True
    if verb == "check-index":
        if existing is None:
            raise ConsulError(f"failed to check index, key {q} doesn't exist")
        if existing.modify_index != op.index:
            raise ConsulError(f"failed index check for key {q}, current modify index "
                              f"{existing.modify_index} != {op.index}")
        return [(existing, False)], True
    if verb == "check-session":
        if existing is None:
            raise ConsulError(f"failed to check session, key {q} doesn't exist")
        if existing.session != op.session:
            raise ConsulError(f"failed session check for key {q}, current session "
                              f"{go_quote(existing.session)} != {go_quote(op.session)}")
        return [(existing, False)], True
    if verb == "check-not-exists":
        if existing is not None:
            raise ConsulError(f"key {q} exists")
        return [], True
    raise ConsulError(f"unknown KV verb {go_quote(verb)}")


class _Soft(ConsulError):
    """A 'false' outcome: a plain boolean for KVS.Apply, an error inside a transaction."""


def run_txn(kv: KVStore, idx: int, ops: list[TxnOp], session_exists: Callable[[str], bool],
            now: float, *, single: bool) -> TxnOutcome:
    """Applies ops at index `idx`. `single=True` is the KVS.Apply path (lock-delay already
    checked by the caller; soft failures return ok=False, errors are RPC errors)."""
    if single:
        try:
            _one(kv, idx, ops[0], session_exists)
        except _Soft:
            return TxnOutcome(ok=False)
        except ConsulError as err:
            return TxnOutcome(ok=False, error=err.message)
        return TxnOutcome(ok=True)

    pre: list[tuple[int, str]] = []
    for i, op in enumerate(ops):
        if op.key == "" and op.verb != "delete-tree":
            pre.append((i, "Must provide key"))
        elif op.verb == "lock" and kv.lock_delay_active(op.key, now):
            pre.append((i, f"failed to lock key {go_quote(op.key)} due to lock delay"))
    if pre:
        return TxnOutcome(ok=False, errors=pre)

    kv.begin()
    results: list[tuple[KVEntry, bool]] = []
    errors: list[tuple[int, str]] = []
    for i, op in enumerate(ops):
        try:
            out, _ = _one(kv, idx, op, session_exists)
            results.extend(out)
        except ConsulError as err:
            errors.append((i, err.message))
    if errors:
        kv.rollback()
        return TxnOutcome(ok=False, errors=errors)
    kv.commit()
    return TxnOutcome(ok=True, results=results)
