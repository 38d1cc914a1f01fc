"""The WAN between DCs: per-DIRECTION link state, delay and loss, as a sum of active faults.

A directed link (src, dst) is down while at least one active fault cuts it; its extra
delay is the largest active delay fault on it and its loss the combined probability of
every active loss fault. Faults register and withdraw their contribution by fault id, so
overlapping faults compose and healing one never heals another's cut.

`transmit(src, dst)` draws from the world's single `random.Random`: it returns the
one-way delay of one message, or None when the message is lost (cut link or loss draw).
A message already in flight when a link is cut is still delivered (it left before the
cut); a message sent on a cut link vanishes, so the sender's own timeout fires, as with
real WAN partitions (packets dropped, no RST).

`changes()` returns the links whose ground truth changed since the last call (for the
history's `link` events and the emulator's Federation).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

Link = tuple[str, str]


@dataclass(frozen=True)
class LinkState:
    up: bool
    delay: float
    """Extra one-way delay from faults (seconds), on top of the base delay."""
    loss: float


@dataclass
class Network:
    dcs: tuple[str, ...]
    rng: random.Random
    base_delay: float = 0.005
    jitter: float = 0.002
    base_loss: float = 0.0
    _cuts: dict[Link, set[int]] = field(default_factory=dict)
    _delays: dict[Link, dict[int, float]] = field(default_factory=dict)
    _losses: dict[Link, dict[int, float]] = field(default_factory=dict)
    _published: dict[Link, LinkState] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for link in self.links():
            self._published[link] = self.state(*link)

    def links(self) -> list[Link]:
        return [(a, b) for a in self.dcs for b in self.dcs if a != b]

    # -- contributions by faults -----------------------------------------------------------

    def cut(self, fault_id: int, links: list[Link]) -> None:
        for link in links:
            self._cuts.setdefault(link, set()).add(fault_id)

    def uncut(self, fault_id: int) -> None:
        for owners in self._cuts.values():
            owners.discard(fault_id)

    def degrade(self, fault_id: int, links: list[Link], delay: float = 0.0, loss: float = 0.0) -> None:
        for link in links:
            if delay:
                self._delays.setdefault(link, {})[fault_id] = delay
            if loss:
                self._losses.setdefault(link, {})[fault_id] = loss

    def restore(self, fault_id: int) -> None:
        for table in (self._delays, self._losses):
            for owners in table.values():
                owners.pop(fault_id, None)

    def heal_all(self) -> None:
        self._cuts.clear()
        self._delays.clear()
        self._losses.clear()

    # -- queries ---------------------------------------------------------------------------

    def is_up(self, src: str, dst: str) -> bool:
        return not self._cuts.get((src, dst))

    def state(self, src: str, dst: str) -> LinkState:
        link = (src, dst)
        delays = self._delays.get(link)
        losses = self._losses.get(link)
        keep = 1.0 - self.base_loss
        if losses:
            for p in losses.values():
                keep *= 1.0 - p
        return LinkState(
            up=self.is_up(src, dst),
            delay=max(delays.values()) if delays else 0.0,
            loss=1.0 - keep,
        )

    def transmit(self, src: str, dst: str) -> float | None:
        """One-way delay of one message from src to dst, or None if it is lost."""
        if self._cuts.get((src, dst)):
            return None
        link = (src, dst)
        losses = self._losses.get(link)
        if (losses or self.base_loss) and self.rng.random() < self.state(src, dst).loss:
            return None
        delays = self._delays.get(link)
        extra = max(delays.values()) if delays else 0.0
        return self.base_delay + extra + self.rng.random() * self.jitter

    def down_links(self) -> list[Link]:
        return [link for link, owners in self._cuts.items() if owners]

    def changes(self) -> list[tuple[Link, LinkState]]:
        """Links whose state changed since the previous call, in a stable order."""
        out: list[tuple[Link, LinkState]] = []
        for link in self.links():
            now = self.state(*link)
            if now != self._published[link]:
                self._published[link] = now
                out.append((link, now))
        return out
