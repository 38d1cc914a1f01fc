"""Session records and the leader's TTL timer policy (session_ttl.go)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from sim.consul.durations import HOUR, SECOND

SessionExpiry = Literal["ttl", "2ttl", "random"]
EXPIRY_MODES: tuple[SessionExpiry, ...] = ("ttl", "2ttl", "random")

SESSION_TTL_MIN_NS = 10 * SECOND
SESSION_TTL_MAX_NS = 24 * HOUR
DEFAULT_LOCK_DELAY_NS = 15 * SECOND
LOCK_DELAY_MIN_THRESHOLD = 1000
"""Numeric LockDelay below this (nanoseconds) is taken as seconds (FixupLockDelay)."""

RELEASE = "release"
DELETE = "delete"


class RandomSource(Protocol):
    """Injected randomness (e.g. `random.Random(seed)`): values in [0, 1)."""

    def random(self) -> float: ...


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    name: str
    node: str
    lock_delay_ns: int
    behavior: str
    ttl: str
    """The TTL string exactly as given ("" = no TTL)."""
    ttl_ns: int
    node_checks: tuple[str, ...]
    service_checks: tuple[str, ...]
    show_checks: bool
    """Whether the response carries the deprecated `Checks` field (not only serfHealth)."""
    create_index: int
    modify_index: int

    def bound_to(self, node: str, check_id: str) -> bool:
        return self.node == node and (check_id in self.node_checks or check_id in self.service_checks)


def expiry_delay(ttl_ns: int, mode: SessionExpiry, rng: RandomSource) -> float:
    """Seconds from a (re)arm of the leader's timer until the session is invalidated.

    Consul arms the timer at TTL x SessionTTLMultiplier (2); `ttl` and `random` are the
    emulator's knobs to test a client against the documented lower bound and everything
    between.
    """
    ttl = ttl_ns / SECOND
    if mode == "ttl":
        return ttl
    if mode == "2ttl":
        return 2 * ttl
    return ttl * (1.0 + rng.random())
