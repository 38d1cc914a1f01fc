"""What a GlobalLock knows about each DC's register, and the pure rules over that knowledge.

`RegView` is one DC's register as seen by one claimant, on the claimant's own monotonic
clock. The rules (docs/safety.md, "Global lock"):

* ``seen_at`` is the RECEIVE time of the first answer that showed ``index``: the write
  that produced ``index`` was applied before that answer was served, so its writer's send
  time is <= seen_at (in real time). It only ever moves later, never earlier: whenever we
  are unsure whether we saw an index before, we take ``now`` (later = safer).
* ``claim_from`` is the SEND time of our latest write to this register that Consul
  acknowledged in our current tenure; the claim lasts until ``claim_from + lease``.
  It is dropped (never moved) when we learn the register changed under us.
* a register is free for us when its value is known and it is absent, released, ours from
  an earlier tenure that we no longer claim, or someone else's and unchanged (same
  ModifyIndex) for ``lease + margin`` since ``seen_at``.

Pure: no clock, no IO.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from coordinator.core.global_register import Register


@dataclass
class RegView:
    dc: str
    weight: int
    index: int | None = None
    """Last known ModifyIndex; None = unknown (next round reads it); 0 = known absent."""
    value: Register | None = None
    """Decoded value at `index` (None when absent or unknown)."""
    seen_at: float | None = None
    claim_from: float | None = None
    claim_index: int | None = None
    """ModifyIndex our claim wrote (diagnostics)."""

    @property
    def term(self) -> int:
        return self.value.term if self.value is not None else 0

    def observe(self, index: int, value: Register | None, now: float) -> None:
        """A read (or our own write's result) showed `index` with `value` at receive time `now`."""
        if index != self.index:
            self.seen_at = now
        self.index = index
        self.value = value

    def forget_index(self) -> None:
        """An outcome is unknown: the next round must read before writing."""
        self.index = None
        self.seen_at = None

    def free_at(self, me: str, lease: float, margin: float) -> float | None:
        """Local time from which we may take this register (None: unknown). A free register
        (absent, released, or written by ourselves) is free from when we saw it."""
        if self.index is None or self.seen_at is None:
            return None
        if self.index == 0 or self.value is None or self.value.free or self.value.holder == me:
            return self.seen_at
        return self.seen_at + lease + margin

    def claim_end(self, lease: float) -> float | None:
        return None if self.claim_from is None else self.claim_from + lease


def majority_end(claims: Iterable[tuple[float, int]], total_weight: int) -> float | None:
    """The latest time T such that claims ending after T weigh a strict majority.

    `claims` are (end, weight). None when even all claims together are not a majority.
    """
    acc = 0
    for end, weight in sorted(claims, key=lambda c: -c[0]):
        acc += weight
        if 2 * acc > total_weight:
            return end
    return None


def majority_value(views: Iterable[RegView], total_weight: int) -> Register | None:
    """The (holder, term) written in a strict weighted majority of the registers, if any
    (a view of who holds, for display: it may be stale and says nothing of lease validity).
    """
    weights: dict[tuple[str, int], int] = {}
    for v in views:
        if v.value is not None and not v.value.free:
            key = (v.value.holder, v.value.term)
            weights[key] = weights.get(key, 0) + v.weight
    for (holder, term), w in weights.items():
        if 2 * w > total_weight:
            return Register(holder, term)
    return None
