"""Named invariants over a history (sim.history), fed one event at a time.

One implementation serves both users: the simulator feeds every event as it happens (and
calls `advance` at `next_deadline()` so time-based invariants fire on time); the
partition lab feeds a recorded history with `check_history`. Contains `Checker`,
`check_history`, `Violation`, the invariant names and `default_liveness_bound`; the
ground truth the invariants are judged against (links, Consul leaders, replicas, faults,
quorum cliques) is kept by sim.checker_truth, whose `STATIC_CUT_FAULTS` is re-exported here.

Safety invariants (checked while faults are active):

- ``one-writable-per-dc``: at most one replica of a DC answers "may write" yes at a time.
- ``witness-never-writable``: a witness DC never answers yes.
- ``quorum-rule``: a DC is not writable once, in GROUND TRUTH, its own reads leave it
  outside every quorum clique (docs/safety.md) for longer than ``grace_own =
  stretch(lease + probe_interval + probe_timeout)``; nor once it has had no quorum clique
  for longer than ``grace_links = stretch(lease + 2 x probe_interval + probe_timeout)``
  (a link it does not read shows in a peer's row, one publication later); nor once it has
  had none among LIVE voters for longer than ``grace_live = stretch(lease + row_fresh +
  2 x probe_interval + probe_timeout)`` (a dead peer's last row stays fresh for row_fresh).
- ``fenced-before-takeover``: a DC cut off from an existing quorum side is not writable
  ``takeover_after / (1 + max_drift)`` after the cut (the majority side's fastest clock).
- ``token-monotonic``: per DC, the token of each new writable tenure is strictly greater
  than the previous tenure's (the same replica may repeat its current token).
- ``resource-stale-write``: the protected resource never accepts a token lower than the
  highest it has accepted.
- ``global-one-holder`` (topologies with ``global_locks``): at no instant do two claimants
  believe they hold the same global lock (``global`` events carry each claimant's belief
  and its end in virtual time; sim/world/global_invariants.py ONE_HOLDER);
- ``global-terms-increase``: each new tenure of a global lock has a strictly greater term
  than every earlier one (TERMS_INCREASE: the term is the fencing token).
- ``admin-fence-holds``: once a DC's admin-fence key is applied (``admin-fence`` event,
  sim/world/operator.py), no running replica of that DC is writable later than
  ``admin_bound = stretch(2 x probe_interval + probe_timeout)`` after it (the leader's
  next round reads the key), until the key is deleted; whoever leads the DC meanwhile.

Liveness invariants:

- ``majority-never-fenced``: during a MINORITY partition (the only active faults are
  static link cuts, no link is degraded, every Consul has a leader and every replica
  runs, exactly one quorum clique exists and some DC is outside it), a DC of that clique
  that was writable when the configuration began stays writable until it changes. Only
  configurations that begin ``grace_live`` after the last heal, Consul leader change,
  link degradation or replica stop/start are checked (evidence must have settled).
  Non-transitive cuts (several overlapping quorum cliques) are not minority partitions.
- ``liveness-writable``: after ``quiet``, every non-witness DC is writable within
  ``liveness_bound`` seconds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from coordinator.core.timers import derive, stretch
from coordinator.core.topology import Topology
from sim.checker_truth import STATIC_CUT_FAULTS, GroundTruth
from sim.history import Event, topology_from_json
from sim.world.global_invariants import ONE_HOLDER, TERMS_INCREASE, GlobalLockWatch

__all__ = [
    "LIVENESS_INVARIANTS", "SAFETY_INVARIANTS", "STATIC_CUT_FAULTS", "Checker", "Violation", "check_history",
    "default_liveness_bound",
]

SAFETY_INVARIANTS = (
    "one-writable-per-dc", "witness-never-writable", "quorum-rule", "fenced-before-takeover",
    "token-monotonic", "resource-stale-write", "global-one-holder", "global-terms-increase",
    "admin-fence-holds",
)
LIVENESS_INVARIANTS = ("majority-never-fenced", "liveness-writable")


@dataclass(frozen=True)
class Violation:
    t: float
    invariant: str
    detail: str
    dc: str | None = None

    def to_event(self) -> Event:
        event: Event = {"t": self.t, "kind": "violation", "invariant": self.invariant, "detail": self.detail}
        if self.dc is not None:
            event["dc"] = self.dc
        return event


def default_liveness_bound(topo: Topology) -> float:
    """After faults stop: an old session may hold the lock up to 2 x TTL, then lock-delay,
    then a local fail-over, evidence rounds, a catch-up hook and backoff."""
    t = topo.timers
    return (
        2 * t.session_ttl + t.lock_delay + derive(t).failover_bound + derive(t).takeover_after
        + 2 * t.retry_backoff_max + 10 * t.probe_interval + 10.0
    )


_GLOBAL_RULES = {ONE_HOLDER: "global-one-holder", TERMS_INCREASE: "global-terms-increase"}


@dataclass
class _Dc:
    writable: set[str] = field(default_factory=set)
    last_tenure: tuple[str, int] | None = None
    max_accepted: int | None = None
    reported: set[str] = field(default_factory=set)
    """Invariants already reported for the current episode (reset when it ends)."""
    first_writable_after_quiet: float | None = None


class Checker:
    """Incremental checker. `feed` every event in order; read `violations` at the end.

    Contract: events are fed with non-decreasing `t`; the first is `meta`. `feed` and
    `advance` return the violations they found (also appended to `violations`).
    """

    def __init__(self, meta: Event, liveness_bound: float | None = None) -> None:
        self.topo = topology_from_json(meta["topology"], meta.get("timers"))
        timers = self.topo.timers
        self.grace_own = stretch(timers.lease + timers.probe_interval + timers.probe_timeout, timers)
        self.grace_links = stretch(timers.lease + 2 * timers.probe_interval + timers.probe_timeout, timers)
        self.grace_live = stretch(
            timers.lease + timers.row_fresh + 2 * timers.probe_interval + timers.probe_timeout, timers
        )
        self.takeover_real = derive(timers).takeover_after / (1.0 + timers.max_drift)
        self.liveness_bound = (
            default_liveness_bound(self.topo) if liveness_bound is None else liveness_bound
        )
        self.dcs: dict[str, _Dc] = {name: _Dc() for name in self.topo.names}
        self.witness = {d.name for d in self.topo.datacenters if d.witness}
        self.truth = GroundTruth(self.topo)
        """Links, Consul leaders, replicas, faults and the quorum cliques they leave."""
        self.quiet_at: float | None = None
        self.config_writable: set[str] | None = None
        """DCs writable when the current static-cut configuration began (None: not in one)."""
        self.violations: list[Violation] = []
        self.now = 0.0
        self.global_locks = GlobalLockWatch()
        self.admin_bound = stretch(2 * timers.probe_interval + timers.probe_timeout, timers)
        self.admin_fenced: dict[str, float] = {}
        """DC -> when its admin-fence key was applied (while it exists)."""

    # -- feeding ---------------------------------------------------------------------------

    def feed(self, event: Event) -> list[Violation]:
        t = float(event["t"])
        found: list[Violation] = []
        deadline = self.next_deadline()
        while deadline is not None and deadline <= t:
            found += self.advance(deadline + 1e-9)
            deadline = self.next_deadline()
        found += self.advance(t)
        kind = event["kind"]
        handler = getattr(self, "_on_" + kind.replace("-", "_"), None)
        if handler is not None:
            found += handler(event)
        return found

    def advance(self, t: float) -> list[Violation]:
        """Move time to `t` and fire every deadline-based invariant due by then."""
        self.now = max(self.now, t)
        found: list[Violation] = []
        for name, dc in self.dcs.items():
            if dc.writable:
                found += self._check_quorum(name, dc)
                found += self._check_admin_fence(name, dc)
        found += self._check_liveness()
        return found

    def next_deadline(self) -> float | None:
        """The earliest time a time-based invariant could fire (None: none pending)."""
        times: list[float] = []
        for name, dc in self.dcs.items():
            if not dc.writable:
                continue
            loss = self.truth.loss[name]
            if loss.lost_own_since is not None:
                times.append(loss.lost_own_since + self.grace_own)
            if loss.lost_links_since is not None:
                times.append(loss.lost_links_since + self.grace_links)
            if loss.lost_live_since is not None:
                times.append(loss.lost_live_since + self.grace_live)
            if loss.cut_from_side_since is not None:
                times.append(loss.cut_from_side_since + self.takeover_real)
            if name in self.admin_fenced:
                times.append(self.admin_fenced[name] + self.admin_bound)
        if self.quiet_at is not None:
            times.append(self.quiet_at + self.liveness_bound)
        future = [x for x in times if x > self.now]
        return min(future) if future else None

    # -- handlers --------------------------------------------------------------------------

    def _on_replica(self, event: Event) -> list[Violation]:
        name, replica = str(event["dc"]), str(event["replica"])
        dc = self.dcs[name]
        found: list[Violation] = []
        if self.truth.on_replica(name, replica, event.get("role"), self.now):
            self._recompute(config_changed=True)
        if event.get("allowed"):
            token = event.get("token")
            if name in self.witness:
                found += self._report("witness-never-writable", name, f"witness {name}/{replica} said yes")
            if replica not in dc.writable and dc.writable:
                others = ", ".join(sorted(dc.writable))
                found.append(self._violate(
                    "one-writable-per-dc", name, f"{name}/{replica} writable while {others} also writable"
                ))
            if isinstance(token, int):
                found += self._check_token(name, dc, replica, token)
            dc.writable.add(replica)
            if self.quiet_at is not None and dc.first_writable_after_quiet is None:
                dc.first_writable_after_quiet = self.now
            found += self._check_quorum(name, dc)
            found += self._check_admin_fence(name, dc)
        else:
            if replica in dc.writable and self.config_writable is not None and name in self.config_writable:
                found += self._report(
                    "majority-never-fenced", name,
                    f"{name}/{replica} fenced ({event.get('reason')}) while its quorum side was intact",
                )
            dc.writable.discard(replica)
        return found

    def _check_token(self, name: str, dc: _Dc, replica: str, token: int) -> list[Violation]:
        last = dc.last_tenure
        dc.last_tenure = (replica, token) if last is None or token >= last[1] else last
        if last is None or (last[0] == replica and last[1] == token):
            return []
        if token < last[1] or (token == last[1] and last[0] != replica):
            return [self._violate(
                "token-monotonic", name,
                f"{name}/{replica} writable with token {token} after {last[0]} held token {last[1]}",
            )]
        return []

    def _on_write(self, event: Event) -> list[Violation]:
        name = str(event["dc"])
        dc = self.dcs[name]
        token = int(event["token"])
        if not event.get("accepted"):
            return []
        if dc.max_accepted is not None and token < dc.max_accepted:
            return [self._violate(
                "resource-stale-write", name,
                f"resource of {name} accepted token {token} after accepting {dc.max_accepted}",
            )]
        dc.max_accepted = token if dc.max_accepted is None else max(dc.max_accepted, token)
        return []

    def _on_link(self, event: Event) -> list[Violation]:
        self.truth.on_link(event, self.now)
        self._recompute(config_changed=True)
        return []

    def _on_consul(self, event: Event) -> list[Violation]:
        self.truth.on_consul(event, self.now)
        self._recompute(config_changed=True)
        return []

    def _on_fault(self, event: Event) -> list[Violation]:
        self.truth.on_fault(event)
        self._recompute(config_changed=True)
        return []

    def _on_global(self, event: Event) -> list[Violation]:
        term, until = event.get("term"), event.get("until")
        broken = self.global_locks.feed(
            self.now, str(event["lock"]), str(event["holder"]),
            None if term is None else int(term), None if until is None else float(until),
        )
        return [self._violate(_GLOBAL_RULES[rule], str(event["dc"]), detail) for rule, detail in broken]

    def _on_admin_fence(self, event: Event) -> list[Violation]:
        name = str(event["dc"])
        if event.get("on"):
            self.admin_fenced.setdefault(name, self.now)
        else:
            self.admin_fenced.pop(name, None)
            self.dcs[name].reported.discard("admin-fence-holds")
        return []

    def _check_admin_fence(self, name: str, dc: _Dc) -> list[Violation]:
        since = self.admin_fenced.get(name)
        if since is None or self.now < since + self.admin_bound:
            return []
        running = sorted(dc.writable - self.truth.stopped[name])
        if not running:
            return []
        return self._report(
            "admin-fence-holds", name,
            f"{name}/{running[0]} writable {self.now - since:.3f}s after the admin-fence key was applied",
        )

    def _on_quiet(self, event: Event) -> list[Violation]:
        self.quiet_at = self.now
        for name, dc in self.dcs.items():
            if dc.writable and name not in self.witness:
                dc.first_writable_after_quiet = self.now
        return []

    def _on_end(self, event: Event) -> list[Violation]:
        return self._check_liveness(final=True)

    # -- ground truth ----------------------------------------------------------------------

    def _recompute(self, config_changed: bool = False) -> None:
        links, live = self.truth.recompute(self.now)
        for name, dc in self.dcs.items():
            if name in links and name in live:
                dc.reported.discard("quorum-rule")
                dc.reported.discard("fenced-before-takeover")
        if config_changed:
            self._update_static_config(links)

    def _update_static_config(self, links: frozenset[str]) -> None:
        """A settled minority partition (sim.checker_truth) fixes the DCs checked by
        majority-never-fenced: those of the quorum side writable as it begins."""
        if self.truth.minority_partition(links, self.now, self.grace_live):
            self.config_writable = {n for n in links if self.dcs[n].writable}
            for name in self.config_writable:
                self.dcs[name].reported.discard("majority-never-fenced")
        else:
            self.config_writable = None

    def _check_quorum(self, name: str, dc: _Dc) -> list[Violation]:
        found: list[Violation] = []
        who = ", ".join(sorted(dc.writable))
        loss = self.truth.loss[name]
        if loss.lost_own_since is not None and self.now > loss.lost_own_since + self.grace_own:
            found += self._report(
                "quorum-rule", name,
                f"{name} ({who}) writable {self.now - loss.lost_own_since:.3f}s after its own links left it "
                f"outside every quorum clique (grace {self.grace_own:.3f}s)",
            )
        if loss.lost_links_since is not None and self.now > loss.lost_links_since + self.grace_links:
            found += self._report(
                "quorum-rule", name,
                f"{name} ({who}) writable {self.now - loss.lost_links_since:.3f}s after losing every quorum "
                f"clique (grace {self.grace_links:.3f}s)",
            )
        if loss.lost_live_since is not None and self.now > loss.lost_live_since + self.grace_live:
            found += self._report(
                "quorum-rule", name,
                f"{name} ({who}) writable {self.now - loss.lost_live_since:.3f}s after losing every quorum "
                f"of live DCs (grace {self.grace_live:.3f}s)",
            )
        if loss.cut_from_side_since is not None and self.now > loss.cut_from_side_since + self.takeover_real:
            found += self._report(
                "fenced-before-takeover", name,
                f"{name} ({who}) still writable {self.now - loss.cut_from_side_since:.3f}s after being cut "
                f"from the quorum side (takeover after {self.takeover_real:.3f}s)",
            )
        return found

    def _check_liveness(self, final: bool = False) -> list[Violation]:
        if self.quiet_at is None:
            return []
        due = self.quiet_at + self.liveness_bound
        if self.now < due and not final:
            return []
        found: list[Violation] = []
        for name, dc in self.dcs.items():
            if name in self.witness or dc.first_writable_after_quiet is not None:
                continue
            if final and self.now < due:
                continue
            found += self._report(
                "liveness-writable", name,
                f"{name} not writable {self.liveness_bound:.1f}s after faults stopped",
            )
        return found

    # -- reporting -------------------------------------------------------------------------

    def _report(self, invariant: str, dc: str, detail: str) -> list[Violation]:
        state = self.dcs[dc]
        if invariant in state.reported:
            return []
        state.reported.add(invariant)
        return [self._violate(invariant, dc, detail)]

    def _violate(self, invariant: str, dc: str | None, detail: str) -> Violation:
        violation = Violation(self.now, invariant, detail, dc)
        self.violations.append(violation)
        return violation


def check_history(events: Iterable[Event], liveness_bound: float | None = None) -> list[Violation]:
    """Run every invariant over a recorded history; returns the violations in time order."""
    checker: Checker | None = None
    for event in events:
        if checker is None:
            if event["kind"] != "meta":
                raise ValueError("a history must start with a meta event")
            checker = Checker(event, liveness_bound)
            continue
        checker.feed(event)
    return [] if checker is None else checker.violations
