"""`ReleaseWrites`: the release writes of one `GlobalLock` (globallock.py).

A release frees every register of a tenure that ended: a CAS of ``holder=""`` with the
SAME term onto each register we claimed, so contenders need not wait for the lapse.

* A graceful release (`start`) is DEFERRED until ``not_before`` (the lock's `yes_over_at`:
  every "yes" it handed out has run out, plus a drift pad): until then nothing is sent,
  `due()` is that time and `releasing` is true. A failed acquisition (`send_now`) gave no
  "yes" and releases at once.
* When the deferred writes go out (`on_timer`), a register read since then that no longer
  names us with that term is skipped, and one whose index became unknown is re-read first.
* A release CAS that fails (a renewal of ours was applied first) or whose outcome is
  unknown is followed by one ``?consistent`` read and, if the register still names us with
  that term, one more release CAS (two CAS attempts per register at most).
* Once the owner contends again (a new tenure), open releases are dropped.

Pure: no clock, no IO.
"""

from __future__ import annotations

import math

from coordinator.core.global_register import Register
from coordinator.core.global_state import RegView
from coordinator.core.global_views import RegisterViews
from coordinator.core.plumbing import Result
from coordinator.core.protocol import Command, SendRequest


class ReleaseWrites:
    """Release writes of one lock; `kind` is the request kind its results are routed by."""

    def __init__(self, regs: RegisterViews, kind: str) -> None:
        self.regs = regs
        self.kind = kind
        self._open: dict[str, tuple[int, int]] = {}
        """DC -> (term being released, release CAS attempts left) while a release is open."""
        self._deferred: dict[str, int] = {}
        """DC -> term of a release write waiting for `_at` (sent by `on_timer`)."""
        self._at = math.inf
        """When the deferred release writes go out."""

    @property
    def releasing(self) -> bool:
        """A release write is deferred or, with its re-read, still in flight."""
        return bool(self._deferred) or self.regs.inflight.has(self.kind)

    def due(self) -> float:
        """When `on_timer` must send the deferred writes (inf: none deferred)."""
        return self._at if self._deferred else math.inf

    def clear(self) -> None:
        """Forget every open and deferred release (the caller cancels `kind` in flight)."""
        self._open.clear()
        self._deferred.clear()
        self._at = math.inf

    def start(self, mine: list[RegView], term: int, now: float, not_before: float) -> list[Command]:
        """Release `mine` (registers claimed in the tenure of `term`) at `not_before`, or
        now if that has passed."""
        if now < not_before:
            self._deferred.update((v.dc, term) for v in mine)
            self._at = not_before
            return []
        return self.send_now(mine, term, now)

    def send_now(self, mine: list[RegView], term: int, now: float) -> list[Command]:
        for v in mine:
            self._open[v.dc] = (term, 2)
        return [self._send(v, term, now) for v in mine]

    def on_timer(self, now: float, me: str) -> list[Command]:
        """Send the deferred writes once due (see the module docstring)."""
        if not self._deferred or now < self._at:
            return []
        deferred, self._deferred = self._deferred, {}
        self._at = math.inf
        cmds: list[Command] = []
        for dc, term in deferred.items():
            v = self.regs.views[dc]
            self._open[dc] = (term, 2)
            if v.index is None:
                cmds.append(self.regs.read(dc, self.kind, now))
            elif v.index and v.value is not None and v.value.holder == me and v.value.term == term:
                cmds.append(self._send(v, term, now))
            else:
                self._open.pop(dc, None)
        return cmds

    def on_result(
        self,
        v: RegView,
        written: Register | None,
        result: Result,
        sent_at: float,
        now: float,
        *,
        me: str,
        term: int | None,
        contending: bool,
    ) -> list[Command]:
        """A release write (`written`) or its re-read came back: retry once if the register
        is still ours. `term` is the owner's current term (None between tenures)."""
        if written is not None:
            if self.regs.on_write(v, written, result, sent_at, now, claim=False):
                self._open.pop(v.dc, None)
                return []
        else:
            self.regs.on_read(v, result, now, me, term)
        pending = self._open.get(v.dc)
        if pending is None or contending:
            self._open.pop(v.dc, None)
            return []
        released, left = pending
        if written is not None and left > 0:
            return [self.regs.read(v.dc, self.kind, now)]
        ours = v.value is not None and v.value.holder == me and v.value.term == released
        if written is None and ours and v.index and left > 0:
            return [self._send(v, released, now)]
        self._open.pop(v.dc, None)
        return []

    def _send(self, v: RegView, term: int, now: float) -> SendRequest:
        left = self._open.get(v.dc, (term, 1))[1]
        self._open[v.dc] = (term, left - 1)
        return self.regs.write(v, "", term, self.kind, now)
