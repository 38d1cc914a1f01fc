"""Prometheus metrics, computed at scrape time from the core's status snapshot.

Everything is exported through one custom collector on the daemon's own CollectorRegistry
(never the global one). Gauges read one status snapshot when scraped (`Runner.status`:
it shows the may-write answer without handing a "yes" out, so a scrape never delays a
graceful stop); counters are plain integers kept by the runner (Consul outcomes), by the
API (may-write answers) and by the `TransitionLog` (fences, transitions), so the hot path
never touches a lock.

Metric names (prefix ``coordinator_``):

gauges   writable, in_quorum, is_leader, token, lease_remaining_seconds,
         link_up{from,to} (1 = a fresh observation says from->to works), dc_state{state}
counters fences_total, transitions_total{to}, consul_requests_total{outcome},
         may_write_requests_total{allowed}
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from coordinator.daemon.runner import OUTCOMES, Runner
from coordinator.daemon.transitions import DC_STATES, TransitionLog, links_of

PREFIX = "coordinator_"


class Metrics:
    """Owns the registry; `render()` returns (body, content type) for GET /metrics."""

    def __init__(self, runner: Runner, transitions: TransitionLog) -> None:
        self.runner = runner
        self.transitions = transitions
        self.may_write_yes = 0
        self.may_write_no = 0
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(self))

    def count_may_write(self, allowed: bool) -> None:
        if allowed:
            self.may_write_yes += 1
        else:
            self.may_write_no += 1

    def render(self) -> tuple[bytes, str]:
        self.transitions.poll()
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def _flag(value: bool) -> float:
    return 1.0 if value else 0.0


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(PREFIX + name, doc, value=value)


class _Collector:
    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        m = self.m
        status = m.runner.status()
        allowed = status.allowed
        yield _gauge("writable", "1 when may-write answers yes right now.", _flag(allowed))
        yield _gauge(
            "in_quorum",
            "1 when this DC belongs to a quorum.",
            _flag(status.quorum is not None and status.quorum.in_quorum),
        )
        yield _gauge("is_leader", "1 when this replica is its DC's leader.", _flag(status.role == "leader"))
        yield _gauge(
            "token",
            "Fencing token of the current writable period (0 = none).",
            float(status.token or 0) if allowed else 0.0,
        )
        yield _gauge(
            "lease_remaining_seconds",
            "Seconds the current yes stays valid (0 when no).",
            max(status.lease_remaining, 0.0) if allowed else 0.0,
        )
        links = GaugeMetricFamily(
            PREFIX + "link_up",
            "1 when a fresh observation says the directed link works.",
            labels=["from", "to"],
        )
        for (src, dst), up in sorted(links_of(status).items()):
            links.add_metric([src, dst], 1.0 if up else 0.0)
        yield links
        state = status.dc_state
        states = GaugeMetricFamily(PREFIX + "dc_state", "1 for the DC's current state.", labels=["state"])
        for name in DC_STATES:
            states.add_metric([name], 1.0 if name == state else 0.0)
        yield states

        log = m.transitions
        yield CounterMetricFamily(PREFIX + "fences", "Transitions into FENCED seen.", value=log.fences)
        transitions = CounterMetricFamily(
            PREFIX + "transitions", "DC state transitions seen, by target.", labels=["to"]
        )
        for name in DC_STATES:
            transitions.add_metric([name], log.by_target.get(name, 0))
        yield transitions
        consul = CounterMetricFamily(
            PREFIX + "consul_requests", "Consul requests completed, by outcome.", labels=["outcome"]
        )
        for outcome in OUTCOMES:
            consul.add_metric([outcome], m.runner.consul_outcomes[outcome])
        yield consul
        may = CounterMetricFamily(
            PREFIX + "may_write_requests", "may-write answers sent.", labels=["allowed"]
        )
        may.add_metric(["true"], m.may_write_yes)
        may.add_metric(["false"], m.may_write_no)
        yield may
