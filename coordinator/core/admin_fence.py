"""The DC-wide admin-fence key as requests and answers, sans-IO (no clock, no IO).

Both shells that set or clear the key use these, so the simulator exercises the daemon's
exact requests: the daemon's `POST /v1/fence|unfence` (coordinator/daemon/admin_fence.py)
and the simulator's operator (sim/world/operator.py). The key itself is
`Keys.admin_fence`; every DC leader reads it in its round txn (probe.py, reconcile.py).

Sequencing, the shells' part: fence = `on_admin(FENCE)` first, then `key_request(True)`;
unfence = `key_request(False)` first, and `on_admin(UNFENCE)` only when `key_outcome`
says it was applied.
"""

from __future__ import annotations

import json

from coordinator.consul import sansio as c
from coordinator.consul.errors import ConsulError
from coordinator.core.plumbing import Keys

WRITE_TIMEOUT = 5.0
"""Client timeout, in seconds, of the key's write or delete."""


def key_request(cluster: str, dc: str, replica_id: str, present: bool) -> c.Request:
    """PUT (`present`: value ``{"fenced_by": replica_id}``) or DELETE of `dc`'s admin-fence key."""
    key = Keys(cluster, dc).admin_fence
    if present:
        return c.kv_put(key, json.dumps({"fenced_by": replica_id}).encode(), timeout=WRITE_TIMEOUT)
    return c.kv_delete(key, timeout=WRITE_TIMEOUT)


def key_outcome(present: bool, result: c.Response | ConsulError) -> str | None:
    """None when Consul applied `key_request(present)`, else why not (one line)."""
    if isinstance(result, ConsulError):
        return f"{type(result).__name__}: {result}"
    try:
        done = c.parse_kv_put(result) if present else c.parse_kv_delete(result)
    except ConsulError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None if done else "Consul did not apply the write"
