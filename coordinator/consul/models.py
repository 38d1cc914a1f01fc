"""Typed, frozen results of Consul responses and the typed transaction operations.

All classes are immutable values; parsers in `coordinator.consul.parsing` build them,
builders in `coordinator.consul.builders` consume `TxnOp`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from coordinator.consul.durations import parse_go_duration


@dataclass(frozen=True)
class QueryMeta:
    """Metadata headers of a read.

    `index` is X-Consul-Index (0 when the header is absent, e.g. writes); `known_leader`
    X-Consul-KnownLeader; `last_contact_ms` X-Consul-LastContact (ms since the serving
    server last heard from the leader; 0 on the leader); `effective_consistency`
    X-Consul-Effective-Consistency ("leader", "consistent", "stale"). None = header absent.
    """

    index: int
    known_leader: bool | None
    last_contact_ms: int | None
    effective_consistency: str | None


@dataclass(frozen=True)
class KvEntry:
    """One KV entry. `value` None = Consul sent null (empty value, or txn results without a value).

    `(key, lock_index, session)` is Consul's lock sequencer.
    """

    key: str
    value: bytes | None
    flags: int
    create_index: int
    modify_index: int
    lock_index: int
    session: str | None


@dataclass(frozen=True)
class KvRead:
    """A KV GET: the entries (empty when Consul answered 404) and the read's metadata."""

    entries: tuple[KvEntry, ...]
    meta: QueryMeta

    @property
    def entry(self) -> KvEntry | None:
        """The first entry, or None when the key is missing (non-recursive reads)."""
        return self.entries[0] if self.entries else None


@dataclass(frozen=True)
class KvKeys:
    """A `?keys` listing (empty when Consul answered 404) and the read's metadata."""

    keys: tuple[str, ...]
    meta: QueryMeta


@dataclass(frozen=True)
class SessionInfo:
    """A session as /v1/session/info|renew return it.

    `ttl` is Consul's string ("30s", "" for none): Consul may return a higher TTL than
    asked on renew. `lock_delay` is in seconds (Consul sends nanoseconds). `checks` merges
    the deprecated `Checks` and `NodeChecks`; `service_checks` are the service check IDs.
    """

    id: str
    name: str
    node: str
    ttl: str
    lock_delay: float
    behavior: str
    checks: tuple[str, ...]
    service_checks: tuple[str, ...]
    create_index: int
    modify_index: int

    @property
    def node_checks(self) -> tuple[str, ...]:
        """Alias of `checks` (Consul 1.7+ name)."""
        return self.checks

    @property
    def ttl_seconds(self) -> float | None:
        """The TTL in seconds, or None when the session has no (or an unparsable) TTL."""
        if not self.ttl:
            return None
        try:
            seconds = parse_go_duration(self.ttl)
        except ValueError:
            return None
        return seconds if seconds > 0 else None


@dataclass(frozen=True)
class TxnOp:
    """One KV operation of a transaction. Build it with the class methods, one per verb.

    Fields not used by the verb are None and are left out of the request body.
    """

    verb: str
    key: str
    value: bytes | None = None
    flags: int | None = None
    index: int | None = None
    session: str | None = None

    @classmethod
    def set(cls, key: str, value: bytes, *, flags: int | None = None) -> TxnOp:
        return cls("set", key, value=value, flags=flags)

    @classmethod
    def cas(cls, key: str, value: bytes, index: int, *, flags: int | None = None) -> TxnOp:
        """Set only if the key's ModifyIndex == index (0: only if absent)."""
        return cls("cas", key, value=value, flags=flags, index=index)

    @classmethod
    def lock(cls, key: str, value: bytes, session: str, *, flags: int | None = None) -> TxnOp:
        return cls("lock", key, value=value, flags=flags, session=session)

    @classmethod
    def unlock(cls, key: str, value: bytes, session: str, *, flags: int | None = None) -> TxnOp:
        return cls("unlock", key, value=value, flags=flags, session=session)

    @classmethod
    def get(cls, key: str) -> TxnOp:
        """Read the key; the transaction fails if it does not exist."""
        return cls("get", key)

    @classmethod
    def get_or_empty(cls, key: str) -> TxnOp:
        return cls("get-or-empty", key)

    @classmethod
    def get_tree(cls, prefix: str) -> TxnOp:
        return cls("get-tree", prefix)

    @classmethod
    def check_index(cls, key: str, index: int) -> TxnOp:
        return cls("check-index", key, index=index)

    @classmethod
    def check_session(cls, key: str, session: str) -> TxnOp:
        """Fail unless the key is locked by `session` ("write only while I hold the lock")."""
        return cls("check-session", key, session=session)

    @classmethod
    def check_not_exists(cls, key: str) -> TxnOp:
        return cls("check-not-exists", key)

    @classmethod
    def delete(cls, key: str) -> TxnOp:
        return cls("delete", key)

    @classmethod
    def delete_tree(cls, prefix: str) -> TxnOp:
        return cls("delete-tree", prefix)

    @classmethod
    def delete_cas(cls, key: str, index: int) -> TxnOp:
        return cls("delete-cas", key, index=index)


@dataclass(frozen=True)
class TxnResult:
    """An applied transaction: the KV results in op order (delete verbs add none)."""

    results: tuple[KvEntry, ...]


@dataclass(frozen=True)
class AgentSelf:
    """The local agent's identity: how a process learns its datacenter."""

    datacenter: str
    node_name: str
    server: bool


@dataclass(frozen=True)
class Member:
    """A gossip member. `status`: 0 none, 1 alive, 2 leaving, 3 left, 4 failed.

    For WAN members `name` is "node.dc"; `dc` and `role` come from the member's tags
    ("" when absent).
    """

    name: str
    addr: str
    port: int
    dc: str
    role: str
    status: int

    ALIVE = 1
    LEAVING = 2
    LEFT = 3
    FAILED = 4


@dataclass(frozen=True)
class Coord:
    """A Vivaldi network coordinate (units: seconds)."""

    vec: tuple[float, ...]
    error: float
    adjustment: float
    height: float

    def rtt_to(self, other: Coord) -> float:
        """Estimated round-trip time in seconds (Consul's lib.ComputeDistance rule)."""
        dist = math.sqrt(sum((a - b) ** 2 for a, b in zip(self.vec, other.vec, strict=False)))
        rtt = dist + self.height + other.height
        adjusted = rtt + self.adjustment + other.adjustment
        return adjusted if adjusted > 0 else rtt


@dataclass(frozen=True)
class NodeCoord:
    node: str
    coord: Coord


@dataclass(frozen=True)
class DcCoords:
    """WAN coordinates of one datacenter's servers."""

    datacenter: str
    area_id: str
    coordinates: tuple[NodeCoord, ...]
