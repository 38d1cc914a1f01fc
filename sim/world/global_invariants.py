"""Global-lock invariants, checked in virtual (real) time after every simulator event.

* ONE_HOLDER: at any instant at most one claimant holds, where "holds" is the claimant's
  own belief at that instant on its own clock (`GlobalLock.valid_until(local_now)`), paused
  claimants included (a SIGSTOPped holder still believes what its clock says);
* TERMS_INCREASE: each new tenure's term is strictly greater than every earlier tenure's
  (the term is the fencing token);
* FENCING: a resource that rejects terms lower than the highest it accepted never accepts
  two different holders' writes under terms that went backwards (follows from the two
  above; checked on the writes the simulated holders make).

The checker only records; tests assert on `violations`. It can fail: a clock drifting
beyond the bound the margin covers produces a ONE_HOLDER violation
(tests/test_global_sim.py::test_drift_beyond_bound_is_caught).
"""

from __future__ import annotations

from dataclasses import dataclass, field

ONE_HOLDER = "ONE_HOLDER"
TERMS_INCREASE = "TERMS_INCREASE"


@dataclass(frozen=True)
class Violation:
    at: float
    rule: str
    detail: str


@dataclass
class GlobalChecker:
    violations: list[Violation] = field(default_factory=list)
    tenures: list[tuple[float, str, int]] = field(default_factory=list)
    """(virtual start, claimant, term) of every tenure, in start order."""
    resource_term: int = 0
    resource_writes: int = 0
    rejected_writes: int = 0
    _current: dict[str, int] = field(default_factory=dict)
    _max_term: int = 0

    def observe(self, at: float, holding: dict[str, int]) -> None:
        """`holding`: claimant -> term, for every claimant that believes it holds now."""
        if len(holding) > 1:
            detail = ", ".join(f"{h}@{t}" for h, t in sorted(holding.items()))
            self._add(at, ONE_HOLDER, f"{len(holding)} holders: {detail}")
        for holder, term in holding.items():
            if self._current.get(holder) == term:
                continue
            if term <= self._max_term:
                self._add(at, TERMS_INCREASE, f"{holder} holds term {term} after term {self._max_term}")
            self._max_term = max(self._max_term, term)
            self.tenures.append((at, holder, term))
        self._current = dict(holding)

    def resource_write(self, at: float, holder: str, term: int) -> bool:
        """A holder writes to the fenced resource; True = accepted."""
        if term < self.resource_term:
            self.rejected_writes += 1
            return False
        self.resource_term = term
        self.resource_writes += 1
        return True

    def _add(self, at: float, rule: str, detail: str) -> None:
        if len(self.violations) < 100:
            self.violations.append(Violation(at, rule, detail))


@dataclass
class _Beliefs:
    holds: dict[str, tuple[int, float]] = field(default_factory=dict)
    """claimant -> (term, time its belief ends)."""
    checker: GlobalChecker = field(default_factory=GlobalChecker)
    doubled: bool = False


class GlobalLockWatch:
    """The same rules over a stream of belief changes (the main simulator's `global`
    history events, sim/checker.py), one `GlobalChecker` per lock.

    `feed(now, lock, claimant, term, until)`: from `now` on, `claimant` believes it holds
    `lock` under `term` until `until` (same time scale as `now`); `until=None`: it does not.
    A belief simply runs out at `until`. Contract: beliefs only start or grow at a feed,
    so observing the holders at every feed sees every instant at which one appears.
    Returns the new violations as (rule, detail); ONE_HOLDER once per episode of overlap.
    """

    def __init__(self) -> None:
        self.locks: dict[str, _Beliefs] = {}

    def feed(self, now: float, lock: str, claimant: str, term: int | None,
             until: float | None) -> list[tuple[str, str]]:
        state = self.locks.setdefault(lock, _Beliefs())
        if term is None or until is None:
            state.holds.pop(claimant, None)
        else:
            state.holds[claimant] = (term, until)
        for gone in [c for c, (_, end) in state.holds.items() if end <= now]:
            del state.holds[gone]
        holding = {c: t for c, (t, _) in state.holds.items()}
        seen = len(state.checker.violations)
        state.checker.observe(now, holding)
        out: list[tuple[str, str]] = []
        for v in state.checker.violations[seen:]:
            if v.rule == ONE_HOLDER and state.doubled:
                continue
            out.append((v.rule, f"lock {lock}: {v.detail}"))
        state.doubled = len(holding) > 1
        return out
