"""Pure Consul HTTP request building and response parsing (gidgethub style): the facade.

`Request` and `Response` are the wire-level currency shared by every shell: the asyncio
daemon sends a Request with httpx, the simulator hands it to the emulated Consul model.
Builders return Requests; parsers take Responses and return typed results or raise the
typed errors of coordinator.consul.errors. Nothing here does IO or reads a clock.

The code lives in sibling modules, split by responsibility; import from here:
- wire.py: Request, Response
- builders.py: one builder per endpoint (kv_get, kv_put, session_create, txn, ...)
- parsing.py: one parser per endpoint (parse_kv_get, ...), parse_query_meta,
  next_blocking_index
- shape.py: raise_for_status (statuses/texts -> errors) and typed body accessors
- models.py: the frozen result types (KvEntry, KvRead, SessionInfo, TxnOp, ...)
- durations.py: Go duration strings
"""

from __future__ import annotations

from coordinator.consul.builders import (
    DEFAULT_BLOCKING_WAIT,
    MAX_TXN_OPS,
    Behavior,
    Consistency,
    agent_check_deregister,
    agent_check_fail,
    agent_check_pass,
    agent_check_register,
    agent_check_warn,
    agent_members,
    agent_self,
    blocking_timeout,
    catalog_datacenters,
    coordinate_datacenters,
    kv_delete,
    kv_get,
    kv_keys,
    kv_put,
    session_create,
    session_destroy,
    session_info,
    session_renew,
    status_leader,
    txn,
    txn_op_json,
)
from coordinator.consul.durations import format_duration, parse_go_duration
from coordinator.consul.models import (
    AgentSelf,
    Coord,
    DcCoords,
    KvEntry,
    KvKeys,
    KvRead,
    Member,
    NodeCoord,
    QueryMeta,
    SessionInfo,
    TxnOp,
    TxnResult,
)
from coordinator.consul.parsing import (
    next_blocking_index,
    parse_agent_members,
    parse_agent_ok,
    parse_agent_self,
    parse_catalog_datacenters,
    parse_coordinate_datacenters,
    parse_kv_delete,
    parse_kv_get,
    parse_kv_keys,
    parse_kv_put,
    parse_query_meta,
    parse_session_create,
    parse_session_destroy,
    parse_session_info,
    parse_session_renew,
    parse_status_leader,
    parse_txn,
)
from coordinator.consul.shape import raise_for_status
from coordinator.consul.wire import Request, Response

__all__ = [
    "DEFAULT_BLOCKING_WAIT",
    "MAX_TXN_OPS",
    "AgentSelf",
    "Behavior",
    "Consistency",
    "Coord",
    "DcCoords",
    "KvEntry",
    "KvKeys",
    "KvRead",
    "Member",
    "NodeCoord",
    "QueryMeta",
    "Request",
    "Response",
    "SessionInfo",
    "TxnOp",
    "TxnResult",
    "agent_check_deregister",
    "agent_check_fail",
    "agent_check_pass",
    "agent_check_register",
    "agent_check_warn",
    "agent_members",
    "agent_self",
    "blocking_timeout",
    "catalog_datacenters",
    "coordinate_datacenters",
    "format_duration",
    "kv_delete",
    "kv_get",
    "kv_keys",
    "kv_put",
    "next_blocking_index",
    "parse_agent_members",
    "parse_agent_ok",
    "parse_agent_self",
    "parse_catalog_datacenters",
    "parse_coordinate_datacenters",
    "parse_go_duration",
    "parse_kv_delete",
    "parse_kv_get",
    "parse_kv_keys",
    "parse_kv_put",
    "parse_query_meta",
    "parse_session_create",
    "parse_session_destroy",
    "parse_session_info",
    "parse_session_renew",
    "parse_status_leader",
    "parse_txn",
    "raise_for_status",
    "session_create",
    "session_destroy",
    "session_info",
    "session_renew",
    "status_leader",
    "txn",
    "txn_op_json",
]
