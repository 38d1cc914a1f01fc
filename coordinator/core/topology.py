"""The cluster topology and timers, as pure, validated data.

This module holds the types only and their pure validation; reading topology.yaml (with
file:line error reporting) lives in coordinator.config.

Field names here are the contract shared by the config loader, the core, the daemon and
the simulator. See docs/configuration.md for every key, its default and why.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Timers:
    """All durations in seconds, measured on the local monotonic clock.

    The safety ordering between them is checked by `validate_timers` (config layer) and
    explained in docs/safety.md.
    """

    probe_interval: float = 0.5
    """How often the DC leader publishes its row and reads its peers' rows."""
    probe_timeout: float = 0.4
    """Client-side timeout of one cross-DC read (`?dc=`); a timeout reads as 'unreachable'."""
    lease: float = 1.5
    """A may-write 'yes' is valid for this long from the SEND time of the confirming round."""
    row_fresh: float = 2.0
    """A peer's row counts only if its sequence advanced within this long (our clock)."""
    max_drift: float = 0.01
    """Bound on clock RATE drift between machines (fraction, 0.01 = 1%)."""
    session_ttl: float = 10.0
    """Consul session TTL for the local leader lock (Consul's minimum is 10s)."""
    check_ttl: float = 1.5
    """TTL of the agent check the leader session is bound to; a dead replica loses its lock after it."""
    check_interval: float = 0.5
    """How often a replica passes its agent TTL check."""
    lock_delay: float = 2.0
    """Consul LockDelay on the leader key; must outlast a deposed leader's lease."""
    takeover_margin: float = 1.0
    """Extra safety margin added to the derived takeover_after."""
    catchup_timeout: float = 30.0
    """How long the catch-up hook may run before the DC stays fenced and retries."""
    retry_backoff_max: float = 5.0
    """Cap of the exponential backoff when local Consul misbehaves."""


@dataclass(frozen=True)
class DcSpec:
    name: str
    weight: int = 1
    witness: bool = False
    """A witness DC votes in the quorum but is never writable."""


@dataclass(frozen=True)
class CatchUp:
    hook: tuple[str, ...] | None = None
    """Command (argv) run on rejoin; exit 0 = caught up."""
    wait_for_admin: bool = False
    """If true (and no hook), wait for POST /v1/caught-up."""
    copy_prefixes: tuple[str, ...] = ()
    """Consul KV prefixes copied from a majority DC into the local DC before writable."""


@dataclass(frozen=True)
class GlobalLockSpec:
    """One cross-DC lock (docs/global-lock.md). Seconds, on each machine's monotonic clock.

    Rules (checked by coordinator.core.global_register.check_spec): request_timeout <
    renew_interval; lease > 2 x renew_interval + request_timeout; margin >=
    2 x max_drift x lease / (1 - max_drift).
    """

    name: str
    lease: float = 3.0
    """A holder counts each register as its own for this long from the SEND time of the write."""
    margin: float = 0.5
    """A contender takes a register only after seeing it unchanged for lease + margin."""
    renew_interval: float = 0.5
    """How often the holder rewrites its registers (and a contender re-reads them)."""
    request_timeout: float = 0.4
    """Client-side timeout of one register read or write (`?dc=`)."""


@dataclass(frozen=True)
class Topology:
    cluster: str
    datacenters: tuple[DcSpec, ...]
    timers: Timers = field(default_factory=Timers)
    catch_up: CatchUp = field(default_factory=CatchUp)
    tie_breaker: str | None = None
    """Optional DC whose side wins an exact half-weight split (see docs/safety.md)."""
    global_locks: tuple[GlobalLockSpec, ...] = ()
    """Cross-DC locks the DC leaders contend for (empty: none)."""

    @property
    def total_weight(self) -> int:
        return sum(dc.weight for dc in self.datacenters)

    def dc(self, name: str) -> DcSpec:
        for spec in self.datacenters:
            if spec.name == name:
                return spec
        raise KeyError(name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(dc.name for dc in self.datacenters)
