"""Catalog (nodes, services, health checks) and agent-local check/service state.

Consul keeps two views: the agent's own checks (`/v1/agent/checks`, updated instantly by
`/v1/agent/check/pass` etc. and by TTL timers) and the catalog in the servers' Raft state
(`/v1/health/*`, `/v1/catalog/*`), fed by the agent's anti-entropy sync. Sessions are bound
to CATALOG checks. The emulator syncs immediately whenever a leader exists (real agents sync
within ~1s of a change), and on leader regain.

Pure data and diffing; the owner allocates indexes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from operator import attrgetter
from typing import Any

PASSING = "passing"
WARNING = "warning"
CRITICAL = "critical"
STATUSES = (PASSING, WARNING, CRITICAL)
SERF_CHECK_ID = "serfHealth"


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    node_id: str
    address: str
    datacenter: str
    create_index: int
    modify_index: int


@dataclass(frozen=True, slots=True)
class Service:
    node: str
    service_id: str
    name: str
    tags: tuple[str, ...] = ()
    address: str = ""
    port: int = 0
    meta: tuple[tuple[str, str], ...] = ()
    create_index: int = 0
    modify_index: int = 0

    def same_content(self, other: Service) -> bool:
        return self is other or _SERVICE_CONTENT(self) == _SERVICE_CONTENT(other)


@dataclass(frozen=True, slots=True)
class Check:
    node: str
    check_id: str
    name: str
    status: str = CRITICAL
    notes: str = ""
    output: str = ""
    service_id: str = ""
    service_name: str = ""
    service_tags: tuple[str, ...] = ()
    type: str = ""
    ttl_ns: int = 0
    interval: str = ""
    timeout: str = ""
    dcsa_ns: int = 0
    """DeregisterCriticalServiceAfter in nanoseconds (0 = never)."""
    create_index: int = 0
    modify_index: int = 0

    def same_content(self, other: Check) -> bool:
        return self is other or _CHECK_CONTENT(self) == _CHECK_CONTENT(other)


def _content_getter(cls: type[Any]) -> Any:
    """Every field but the Raft indexes, as one tuple (what `same_content` compares)."""
    return attrgetter(*(f.name for f in fields(cls) if f.name not in ("create_index", "modify_index")))


_SERVICE_CONTENT = _content_getter(Service)
_CHECK_CONTENT = _content_getter(Check)


@dataclass
class AgentState:
    """What the local agent knows about its own checks/services (no Raft indexes)."""

    checks: dict[str, Check] = field(default_factory=dict)
    services: dict[str, Service] = field(default_factory=dict)
    ttl_deadline: dict[str, float] = field(default_factory=dict)
    """TTL check id -> when it turns critical without an update."""
    critical_since: dict[str, float] = field(default_factory=dict)


class Catalog:
    """Catalog tables of one DC plus their shared table index."""

    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}
        self.services: dict[tuple[str, str], Service] = {}
        self.checks: dict[tuple[str, str], Check] = {}
        self.table_index = 0

    def ensure_node(self, idx: int, name: str, node_id: str, address: str, dc: str) -> None:
        self.nodes[name] = Node(name, node_id, address, dc, idx, idx)
        self.table_index = max(self.table_index, idx)

    def put_check(self, idx: int, check: Check) -> bool:
        """Insert or update; returns False (no index bump) when nothing changed."""
        key = (check.node, check.check_id)
        old = self.checks.get(key)
        if old is not None and old.same_content(check):
            return False
        create = old.create_index if old is not None else idx
        self.checks[key] = replace(check, create_index=create, modify_index=idx)
        self.table_index = max(self.table_index, idx)
        return True

    def delete_check(self, idx: int, node: str, check_id: str) -> bool:
        if self.checks.pop((node, check_id), None) is None:
            return False
        self.table_index = max(self.table_index, idx)
        return True

    def put_service(self, idx: int, svc: Service) -> bool:
        key = (svc.node, svc.service_id)
        old = self.services.get(key)
        if old is not None and old.same_content(svc):
            return False
        create = old.create_index if old is not None else idx
        self.services[key] = replace(svc, create_index=create, modify_index=idx)
        self.table_index = max(self.table_index, idx)
        return True

    def delete_service(self, idx: int, node: str, service_id: str) -> bool:
        if self.services.pop((node, service_id), None) is None:
            return False
        for key in [k for k, c in self.checks.items() if c.node == node and c.service_id == service_id]:
            del self.checks[key]
        self.table_index = max(self.table_index, idx)
        return True

    def node_checks(self, node: str) -> list[Check]:
        return sorted((c for c in self.checks.values() if c.node == node), key=lambda c: c.check_id)

    def service_instances(self, name: str) -> list[Service]:
        return sorted((s for s in self.services.values() if s.name == name),
                      key=lambda s: (s.node, s.service_id))

    def service_checks(self, name: str) -> list[Check]:
        return sorted((c for c in self.checks.values() if c.service_name == name),
                      key=lambda c: (c.node, c.check_id))
