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
from collections.abc import Callable, Iterable, Mapping
from typing import Any

log = logging.getLogger("coordinator.transitions")

DC_STATES = ("fenced", "catching-up", "writable")


def _get(obj: Any, *names: str, default: Any = None) -> Any:
    """First present attribute or mapping key of `names` (snapshots are dataclasses)."""
    for name in names:
        if isinstance(obj, Mapping):
            if name in obj:
                return obj[name]
        elif hasattr(obj, name):
            return getattr(obj, name)
    return default


def state_name(value: Any) -> str:
    """Normalise a state (enum or string) to the metric label form: "catching-up"."""
    raw = getattr(value, "value", value)
    if not isinstance(raw, str):
        raw = getattr(value, "name", str(raw))
    return str(raw).lower().replace("_", "-")


def dc_state_of(status: Any) -> str | None:
    value = _get(status, "dc_state", "state")
    return None if value is None else state_name(value)


def links_of(status: Any) -> dict[tuple[str, str], bool]:
    """Directed links (from, to) -> up, from the snapshot's directed matrix."""
    matrix = _get(status, "directed", "matrix", "directed_matrix", default=None)
    matrix = _get(matrix, "directed", "links", default=matrix)
    links: dict[tuple[str, str], bool] = {}
    if isinstance(matrix, Mapping):
        for key, value in matrix.items():
            if isinstance(key, tuple) and len(key) == 2:
                links[(str(key[0]), str(key[1]))] = bool(value)
            elif isinstance(value, Mapping):
                for dst, up in value.items():
                    links[(str(key), str(dst))] = bool(up)
    elif isinstance(matrix, Iterable):
        for item in matrix:
            src = _get(item, "src", "from_dc", "source")
            dst = _get(item, "dst", "to_dc", "target")
            if src is not None and dst is not None:
                links[(str(src), str(dst))] = bool(_get(item, "up", "ok", default=False))
    return links


class TransitionLog:
    """Logs and counts DC state transitions found in successive status snapshots."""

    def __init__(self, status: Callable[[], Any], dc: str) -> None:
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
        items = _get(status, "transitions", default=()) or ()
        for item in items:
            at = float(_get(item, "at", "time", "t", default=0.0))
            src = state_name(_get(item, "from_state", "src", "from_", "old", default="?"))
            dst = state_name(_get(item, "to_state", "dst", "to", "new", default="?"))
            key = (at, src, dst)
            if at < self._last_time or key in self._seen:
                continue
            self._seen.add(key)
            self._last_time = max(self._last_time, at)
            self.by_target[dst] = self.by_target.get(dst, 0) + 1
            if dst == "fenced":
                self.fences += 1
            reason = _get(item, "reason", default=None)
            reason_text = state_name(reason) if reason is not None else "-"
            token = _get(status, "token", default=None)
            log.info(
                "transition dc=%s %s -> %s reason=%s fencing_token=%s", self.dc, src, dst, reason_text, token
            )
        if len(self._seen) > 512:
            self._seen = {k for k in self._seen if k[0] >= self._last_time}
