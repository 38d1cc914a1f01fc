"""The DC-wide half of `POST /v1/fence` and `POST /v1/unfence` (admin token; api.py).

Contract:

* fence: the called replica fences at once (sticky, its own source), THEN writes its
  DC's admin-fence key (`Keys.admin_fence`) to its local Consul. Every leader of the DC,
  now or after a fail-over, reads that key in each probe round's txn and stays fenced
  while it exists (coordinator.core.reconcile). The answer says whether the key was
  written (``dc_wide``); when it was not (Consul down, ACL), this replica stays fenced
  anyway and the call can be repeated.
* unfence: deletes the key FIRST; when that fails nothing changes (503: unknown means
  no). Then lifts the called replica's own fence. A DC leaves the admin fence only after
  a round has read the key gone, and becomes writable only through a quorum-confirming
  round and catch-up, never at once.

The key is written and deleted with the daemon's own Consul client (this module is a
shell: the core only reads the key).
"""

from __future__ import annotations

import asyncio
import json

from coordinator.consul import sansio as c
from coordinator.consul.errors import ConsulError
from coordinator.core.plumbing import Keys
from coordinator.daemon.runner import Runner

WRITE_TIMEOUT = 5.0
"""Seconds for the key's write or delete (client timeout; the call never waits longer)."""


async def set_dc_fence(runner: Runner, present: bool) -> str | None:
    """Writes (`present`) or deletes the DC's admin-fence key; None when done, else why not."""
    status = runner.status()
    key = Keys(status.cluster, status.dc).admin_fence
    if present:
        body = json.dumps({"fenced_by": status.replica_id}).encode()
        req = c.kv_put(key, body, timeout=WRITE_TIMEOUT)
    else:
        req = c.kv_delete(key, timeout=WRITE_TIMEOUT)
    try:
        resp = await asyncio.wait_for(runner.consul.send(req), WRITE_TIMEOUT + 1.0)
        done = c.parse_kv_put(resp) if present else c.parse_kv_delete(resp)
    except ConsulError as exc:
        return f"{type(exc).__name__}: {exc}"
    except TimeoutError:
        return f"no answer from Consul within {WRITE_TIMEOUT:g}s"
    return None if done else "Consul did not apply the write"
