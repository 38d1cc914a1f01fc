"""An operator's admin fence in the simulated world, done the way the daemon does it
(coordinator/daemon/admin_fence.py) so the code under simulation sees the same thing:

* fence: `on_admin(FENCE)` on the chosen replica at once, then a KV PUT of the DC's
  admin-fence key (`Keys.admin_fence`) through that DC's local Consul (the fabric, same
  request encoding as the daemon's client);
* unfence: the KV DELETE first; only once Consul confirms it, `on_admin(UNFENCE)` on the
  replica. A DELETE that fails (e.g. the DC's Consul has no leader) is retried every
  `RETRY` seconds, as an operator would, so the DC does not stay fenced for good.

Each applied PUT/DELETE is recorded as an ``admin-fence`` event ``{dc, on}`` at the
virtual time Consul applied it: the checker's ``admin-fence-holds`` invariant is judged
from there (sim/checker.py).
"""

from __future__ import annotations

import json
from functools import partial
from typing import TYPE_CHECKING

from coordinator.consul import sansio as c
from coordinator.consul.errors import ConsulError
from coordinator.core.plumbing import Keys
from coordinator.core.protocol import AdminAction

if TYPE_CHECKING:
    from sim.world.world import World

RETRY = 1.0
"""Seconds between attempts of an unfence whose DELETE Consul did not apply."""


def admin_fence(world: World, dc: str, replica: str, on: bool) -> None:
    """Starts a fence (`on`) or an unfence of `dc` through `replica` (see the module doc)."""
    key = Keys(world.topology.cluster, dc).admin_fence
    host = world.host(dc, replica)
    if on:
        host.admin(AdminAction.FENCE)
        body = json.dumps({"fenced_by": replica}).encode()
        world.fabric.call(dc, c.kv_put(key, body), partial(_applied, world, dc, replica, True))
    else:
        world.fabric.call(dc, c.kv_delete(key), partial(_applied, world, dc, replica, False))


def _applied(world: World, dc: str, replica: str, on: bool, response: c.Response) -> None:
    try:
        done = c.parse_kv_put(response) if on else c.parse_kv_delete(response)
    except ConsulError:
        done = False
    if done:
        world.emit({"t": world.queue.now, "kind": "admin-fence", "dc": dc, "on": on, "replica": replica})
        if not on:
            world.host(dc, replica).admin(AdminAction.UNFENCE)
    elif not on:
        world.queue.after(RETRY, admin_fence, world, dc, replica, False)
