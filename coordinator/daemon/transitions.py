"""Reading the core's StatusSnapshot for logs and metrics: transitions, DC state, links.

`TransitionLog.poll()` reads the snapshot's recent transitions and, for every one not seen
before, logs exactly one INFO line and counts it (fences, transitions by target state).
The runner calls it whenever the answer index moves; the metrics scrape calls it too. A
transition is identified by (time, from, to); the snapshot keeps only the last ~50, so a
burst of more than that between two polls is under-counted (documented in
docs/operations.md).

Log lines name the DC, the states, the reason and the token number (a fencing token is a
public sequence number, not a secret); they never contain an ACL or admin token.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from coordinator.core.protocol import StatusSnapshot

log = logging.getLogger("coordinator.transitions")

DC_STATES = ("fenced", "catching-up", "writable")


def links_of(status: StatusSnapshot) -> dict[tuple[str, str], bool]:
    """Directed links (from, to) -> up, from the snapshot's directed matrix (no self-links)."""
    return {(src, dst): up for src, row in status.directed.items() for dst, up in row.items() if src != dst}


class TransitionLog:
    """Logs and counts DC state transitions found in successive status snapshots."""

    def __init__(self, status: Callable[[], StatusSnapshot], dc: str) -> None:
        self._status = status
        self.dc = dc
        self.fences = 0
        self.by_target: dict[str, int] = {}
        self._seen: set[tuple[float, str, str]] = set()
        self._last_time = float("-inf")

    def poll(self) -> None:
        try:
            status = self._status()
        except Exception:
            log.exception("status snapshot failed")
            return
        for item in status.transitions:
            key = (item.at, item.from_state, item.to_state)
            if item.at < self._last_time or key in self._seen:
                continue
            self._seen.add(key)
            self._last_time = max(self._last_time, item.at)
            self.by_target[item.to_state] = self.by_target.get(item.to_state, 0) + 1
            if item.to_state == "fenced":
                self.fences += 1
            log.info(
                "transition dc=%s %s -> %s reason=%s role=%s fencing_token=%s",
                self.dc,
                item.from_state,
                item.to_state,
                item.reason or "-",
                status.role,
                status.token,
            )
        if len(self._seen) > 512:
            self._seen = {k for k in self._seen if k[0] >= self._last_time}
