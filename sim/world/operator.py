"""An operator's admin fence in the simulated world, done the way the daemon does it
(coordinator/daemon/admin_fence.py) so the code under simulation sees the same thing:

* fence: `on_admin(FENCE)` on the chosen replica at once, then the DC's admin-fence key
  written through that DC's local Consul (the fabric), with the daemon's own request
  (coordinator.core.admin_fence);
* unfence: the KV DELETE first; only once Consul confirms it, `on_admin(UNFENCE)` on the
  replica. A DELETE that fails (e.g. the DC's Consul has no leader) is retried every
  `RETRY` seconds, as an operator would, so the DC does not stay fenced for good.

Each applied PUT/DELETE is recorded as an ``admin-fence`` event ``{dc, on}`` at the
virtual time Consul applied it: the checker's ``admin-fence-holds`` invariant is judged
from there (sim/checker.py).
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from coordinator.consul.sansio import Response
from coordinator.core.admin_fence import key_outcome, key_request
from coordinator.core.protocol import AdminAction

if TYPE_CHECKING:
    from sim.world.world import World

RETRY = 1.0
"""Seconds between attempts of an unfence whose DELETE Consul did not apply."""


def admin_fence(world: World, dc: str, replica: str, on: bool) -> None:
    """Starts a fence (`on`) or an unfence of `dc` through `replica` (see the module doc)."""
    if on:
        world.host(dc, replica).admin(AdminAction.FENCE)
    request = key_request(world.topology.cluster, dc, replica, on)
    world.fabric.call(dc, request, partial(_applied, world, dc, replica, on))


def _applied(world: World, dc: str, replica: str, on: bool, response: Response) -> None:
    if key_outcome(on, response) is None:
        world.emit({"t": world.queue.now, "kind": "admin-fence", "dc": dc, "on": on, "replica": replica})
        if not on:
            world.host(dc, replica).admin(AdminAction.UNFENCE)
    elif not on:
        world.queue.after(RETRY, admin_fence, world, dc, replica, False)
