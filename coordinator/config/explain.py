"""The human explanation `coordinator check-config` prints for a valid topology."""

from __future__ import annotations

from dataclasses import fields

from coordinator.config.durations import format_duration
from coordinator.config.quorum import minimal_quorums, threshold
from coordinator.config.schema import FRACTION_TIMERS
from coordinator.core.timers import CONSUL_SESSION_TTL_MAX, CONSUL_SESSION_TTL_MIN, derive, stretch
from coordinator.core.topology import Timers, Topology


def fmt(seconds: float) -> str:
    """Durations for people: rounded to the millisecond."""
    return format_duration(round(seconds, 3))


def explain_topology(topo: Topology) -> str:
    """Multi-line text: DCs and weights, the quorum rule and which DC sets can be writable,
    the configured and derived timers, and the timer ordering rules with their status.
    """
    lines = [*_dcs(topo), "", *_quorums(topo), "", *_timers(topo.timers), "", *_catch_up(topo)]
    return "\n".join(lines)


def _dcs(topo: Topology) -> list[str]:
    n = len(topo.datacenters)
    lines = [
        f"cluster {topo.cluster!r}: {n} datacenter{'s' if n != 1 else ''}, "
        f"KV prefix coordinator/{topo.cluster}/"
    ]
    width = max(len(name) for name in topo.names)
    for dc in topo.datacenters:
        role = "witness (votes, never writable)" if dc.witness else "writable when in quorum"
        tie = ", tie-breaker" if dc.name == topo.tie_breaker else ""
        lines.append(f"  {dc.name:<{width}}  weight {dc.weight}  {role}{tie}")
    lines.append(
        f"total weight {topo.total_weight}; quorum needs weight >= {threshold(topo)} (a strict majority)"
    )
    if topo.tie_breaker is not None and topo.total_weight % 2 == 0:
        lines.append(
            f"  or exactly {topo.total_weight // 2} (half) when the side includes "
            f"tie-breaker {topo.tie_breaker}"
        )
    return lines


def _quorums(topo: Topology) -> list[str]:
    lines = [
        "A non-witness DC may write only while it belongs to a set of DCs that all reach each other",
        "both ways and together hold a quorum.",
    ]
    weights = {dc.weight for dc in topo.datacenters}
    n = len(topo.datacenters)
    if len(weights) == 1 and topo.tie_breaker is None:
        k = -(-threshold(topo) // weights.pop())
        lines.append(f"Quorum sides: any {k} of {n} DCs ({', '.join(topo.names)}).")
    else:
        sets = minimal_quorums(topo)
        if sets is None:
            lines.append(
                f"Quorum sides: any set of DCs with weight >= {threshold(topo)} (too many DCs to list)."
            )
        else:
            lines.append("Quorum sides (smallest; any superset also has quorum):")
            lines.extend("  {" + ", ".join(s) + "}" for s in sets)
    witnesses = [dc.name for dc in topo.datacenters if dc.witness]
    if witnesses:
        lines.append(f"Witnesses (count toward quorum, never writable): {', '.join(witnesses)}.")
    lines.append("A DC outside every quorum side is fenced: it answers 'no' to may-write.")
    return lines


def _timers(timers: Timers) -> list[str]:
    configured = [
        f"{f.name} {getattr(timers, f.name) if f.name in FRACTION_TIMERS else fmt(getattr(timers, f.name))}"
        for f in fields(timers)
    ]
    d = derive(timers)
    lines = [
        "timers:",
        *("  " + ", ".join(configured[i : i + 4]) for i in range(0, len(configured), 4)),
        "derived:",
        f"  takeover_after     {fmt(d.takeover_after)}: the majority takes over a DC's work only after "
        "seeing no evidence of it for this long",
        f"  max fence latency  {fmt(d.max_fence_latency)}: a cut-off DC stops saying 'yes' within this long",
        f"  fail-over bound    {fmt(d.failover_bound)}: a DC has a new local leader within this long "
        "after the leader replica dies",
        "ordering rules:",
    ]
    rules = [
        (
            timers.probe_timeout < timers.probe_interval,
            f"probe_timeout {fmt(timers.probe_timeout)} < probe_interval {fmt(timers.probe_interval)}",
        ),
        (
            timers.lease >= timers.probe_interval + timers.probe_timeout,
            f"lease {fmt(timers.lease)} >= probe_interval + probe_timeout "
            f"{fmt(timers.probe_interval + timers.probe_timeout)}",
        ),
        (
            timers.row_fresh >= 3 * timers.probe_interval,
            f"row_fresh {fmt(timers.row_fresh)} >= 3 x probe_interval {fmt(3 * timers.probe_interval)}",
        ),
        (
            timers.check_interval * 2 <= timers.check_ttl,
            f"check_interval {fmt(timers.check_interval)} <= check_ttl / 2 {fmt(timers.check_ttl / 2)}",
        ),
        (
            timers.lock_delay >= stretch(timers.lease, timers),
            f"lock_delay {fmt(timers.lock_delay)} >= lease x drift {stretch(timers.lease, timers):.3f}s "
            "(a deposed leader's lease ends before a new leader can lock)",
        ),
        (
            d.takeover_after > stretch(d.max_fence_latency, timers),
            f"takeover_after {fmt(d.takeover_after)} > max fence latency x drift "
            f"{stretch(d.max_fence_latency, timers):.3f}s "
            "(a cut-off DC fences before the majority takes over)",
        ),
        (
            CONSUL_SESSION_TTL_MIN <= timers.session_ttl <= CONSUL_SESSION_TTL_MAX,
            f"session_ttl {fmt(timers.session_ttl)} within Consul's bounds [10s, 24h]",
        ),
    ]
    lines.extend(f"  [{'ok' if holds else 'NOT MET'}] {text}" for holds, text in rules)
    return lines


def _catch_up(topo: Topology) -> list[str]:
    c = topo.catch_up
    if c.hook is not None:
        how = f"run {list(c.hook)} (exit 0 = caught up, at most {fmt(topo.timers.catchup_timeout)})"
    elif c.wait_for_admin:
        how = "wait for an operator's POST /v1/caught-up"
    else:
        how = "no hook: writable again as soon as it is back in a quorum"
    lines = [f"catch-up on rejoin: {how}"]
    if c.copy_prefixes:
        lines.append(f"  first copy KV prefixes from a majority DC: {', '.join(c.copy_prefixes)}")
    return lines
