"""Timer derivation and the safety ordering between timers.

Invariant this module protects (argued in docs/safety.md): a DC that loses quorum stops
answering "yes" before any other DC may consider it gone, and a deposed local leader's
lease runs out before a new local leader can take the lock. Both are orderings of
durations measured on different machines' monotonic clocks, so every comparison is padded
by the configured bound on clock RATE drift (`max_drift`).

Pure: no clock, no IO.
"""

from __future__ import annotations

from dataclasses import dataclass

from coordinator.core.topology import Timers

CONSUL_SESSION_TTL_MIN = 10.0
CONSUL_SESSION_TTL_MAX = 86400.0
CONSUL_LOCK_DELAY_MAX = 60.0


@dataclass(frozen=True)
class DerivedTimers:
    takeover_after: float
    """How long the majority must have seen no evidence of a DC before taking over its work."""
    max_fence_latency: float
    """Upper bound on cut -> minority says no, when every probe round fails or hangs."""
    failover_bound: float
    """Upper bound on local fail-over after the leader replica dies (check TTL + lock-delay + a round)."""


def stretch(duration: float, timers: Timers) -> float:
    """A duration measured on a clock that may run slow by `max_drift`, seen from a fast one."""
    return duration * (1.0 + timers.max_drift) / (1.0 - timers.max_drift)


def derive(timers: Timers) -> DerivedTimers:
    """Derive the timers the safety argument needs from the configured ones.

    takeover_after (docs/safety.md, "Takeover"): if DC m was writable at a moment t no
    later than ``row_fresh`` before my decision, some DC q of my quorum published a claim
    of evidence of m no older than ``lease + row_fresh + row_fresh + probe_timeout`` before
    t (lease: m's lease from its round start; row_fresh: q's row was fresh for m; row_fresh:
    q's claimed age; probe_timeout: q's row write may land up to its timeout after its
    round start), each measured on another machine's clock, hence stretched. My own
    ``row_fresh`` (q fresh for me, my clock, not stretched) bounds how long I may not have
    read q's newest row yet. ``takeover_margin`` pads the sum.

    max_fence_latency: after a total cut at C, my last evidence is <= C, a round may still
    pass until C + row_fresh, and its lease runs ``lease`` from its start.
    """
    window = timers.lease + 2 * timers.row_fresh + timers.probe_timeout
    return DerivedTimers(
        takeover_after=timers.row_fresh + stretch(window, timers) + timers.takeover_margin,
        max_fence_latency=timers.row_fresh + timers.lease,
        failover_bound=timers.check_ttl + timers.lock_delay + timers.probe_interval + timers.probe_timeout,
    )


def timer_violations(timers: Timers) -> list[tuple[str, str]]:
    """Every broken rule as (field, message); empty when the timers are safe and usable."""
    out: list[tuple[str, str]] = []
    for name in (
        "probe_interval", "probe_timeout", "lease", "row_fresh", "session_ttl", "check_ttl",
        "check_interval", "catchup_timeout", "retry_backoff_max",
    ):
        if getattr(timers, name) <= 0:
            out.append((name, "must be greater than 0"))
    for name in ("lock_delay", "takeover_margin"):
        if getattr(timers, name) < 0:
            out.append((name, "must not be negative"))
    if out:
        return out
    if not 0.0 <= timers.max_drift < 0.5:
        out.append(("max_drift", "must be a fraction in [0, 0.5), e.g. 0.01 for 1%"))
        return out
    if timers.probe_timeout >= timers.probe_interval:
        out.append(("probe_timeout", "must be shorter than probe_interval so probe rounds do not overlap"))
    if timers.lease < timers.probe_interval + timers.probe_timeout:
        out.append((
            "lease", "must be at least probe_interval + probe_timeout, or writable flaps between rounds",
        ))
    if timers.row_fresh < 3 * timers.probe_interval:
        out.append((
            "row_fresh",
            "must be at least 3 x probe_interval: a healthy peer's published evidence is already "
            "2 rounds old, and one late round must not make it look stale",
        ))
    if not CONSUL_SESSION_TTL_MIN <= timers.session_ttl <= CONSUL_SESSION_TTL_MAX:
        out.append(("session_ttl", "must be between 10s and 86400s (Consul's session TTL bounds)"))
    if timers.check_interval * 2 > timers.check_ttl:
        out.append((
            "check_interval", "must be at most half of check_ttl, or a live replica's check can lapse",
        ))
    if timers.lock_delay > CONSUL_LOCK_DELAY_MAX:
        out.append(("lock_delay", "must be at most 60s (Consul's maximum LockDelay)"))
    if timers.lock_delay < stretch(timers.lease, timers):
        out.append((
            "lock_delay",
            f"must be at least lease x drift ({stretch(timers.lease, timers):.3f}s): a deposed leader's "
            "lease must run out before a new leader can take the lock",
        ))
    return out
