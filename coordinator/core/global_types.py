"""The global lock's public value types: the claimant's role and the answer it hands out.

Separate from globallock.py only to keep that module small; import them from either.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class GlobalRole(enum.Enum):
    INACTIVE = "inactive"
    """Not a DC leader: sends nothing."""
    IDLE = "idle"
    """Observing the registers."""
    CANDIDATE = "candidate"
    HOLDER = "holder"


@dataclass(frozen=True)
class GlobalAnswer:
    name: str
    held: bool
    """We hold the lock now: act under `term`, for at most `valid_for` seconds."""
    term: int | None
    valid_for: float
    holder: str | None
    """Who holds: us when held, else the claimant written in a majority of the registers (may be stale)."""
    holder_term: int | None
    index: int
    """Bumps whenever (held, term) changes: long-polls wait for it to move."""


@dataclass
class Round:
    """One renew/read round of a GlobalLock (internal to globallock.py)."""

    t0: float
    seq: int
    deadline: float
    term: int | None
    """The term written in this round (None: read-only round)."""
    pending: set[str] = field(default_factory=set)
