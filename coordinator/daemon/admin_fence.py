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

The requests and the reading of their answers are coordinator.core.admin_fence's (shared
with the simulator); this shell only sends them with the daemon's Consul client, whose
own timeout (`WRITE_TIMEOUT`) bounds the call.
"""

from __future__ import annotations

from coordinator.consul.errors import ConsulError
from coordinator.core.admin_fence import key_outcome, key_request
from coordinator.daemon.runner import Runner


async def set_dc_fence(runner: Runner, present: bool) -> str | None:
    """Writes (`present`) or deletes the DC's admin-fence key; None when done, else why not."""
    status = runner.status()
    req = key_request(status.cluster, status.dc, status.replica_id, present)
    try:
        return key_outcome(present, await runner.consul.send(req))
    except ConsulError as exc:
        return key_outcome(present, exc)
