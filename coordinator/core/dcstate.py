"""The DC write-state machine: FENCED -> CATCHING_UP -> WRITABLE (h11 `_state.py` style).

Rules (docs/safety.md):

1. FENCED is the initial state: at start-up nothing is known, and unknown means no.
2. FENCED -> CATCHING_UP only on QUORUM_CONFIRMED (a probe round proved leadership and
   quorum). Entering CATCHING_UP is when the caller mints a fresh fencing token.
3. CATCHING_UP -> WRITABLE only on CATCHUP_DONE. There is no edge FENCED -> WRITABLE:
   every writable period is preceded by a catch-up since the last fence.
4. FENCE moves every state to FENCED (a round did not confirm, the lease ran out,
   leadership was lost, local Consul failed, catch-up failed).
5. ADMIN_FENCE moves every state to FENCED and is sticky: while admin-fenced,
   QUORUM_CONFIRMED is refused (the state stays FENCED) until ADMIN_UNFENCE.
6. Any (state, event) pair missing from `TRANSITIONS` raises `IllegalTransition`; the
   caller guards its events, so an illegal move is a bug, never a runtime condition.

Pure: times are passed in.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass

from coordinator.core.protocol import Reason


class DcState(enum.Enum):
    FENCED = "fenced"
    CATCHING_UP = "catching-up"
    WRITABLE = "writable"


class DcEvent(enum.Enum):
    QUORUM_CONFIRMED = "quorum-confirmed"
    CATCHUP_DONE = "catchup-done"
    FENCE = "fence"
    ADMIN_FENCE = "admin-fence"
    ADMIN_UNFENCE = "admin-unfence"


class IllegalTransition(Exception):
    """An event that the transition table does not allow in the current state."""

    def __init__(self, state: DcState, event: DcEvent) -> None:
        super().__init__(f"illegal DC transition: {event.value} in state {state.value}")
        self.state = state
        self.event = event


_F, _C, _W = DcState.FENCED, DcState.CATCHING_UP, DcState.WRITABLE
_Q, _D, _X = DcEvent.QUORUM_CONFIRMED, DcEvent.CATCHUP_DONE, DcEvent.FENCE
_AF, _AU = DcEvent.ADMIN_FENCE, DcEvent.ADMIN_UNFENCE

TRANSITIONS: dict[tuple[DcState, DcEvent], DcState] = {
    (_F, _Q): _C,
    (_C, _Q): _C,
    (_W, _Q): _W,
    (_C, _D): _W,
    (_F, _X): _F,
    (_C, _X): _F,
    (_W, _X): _F,
    (_F, _AF): _F,
    (_C, _AF): _F,
    (_W, _AF): _F,
    (_F, _AU): _F,
    (_C, _AU): _C,
    (_W, _AU): _W,
}
"""Every legal move. Note the absent (FENCED, CATCHUP_DONE) and (WRITABLE, CATCHUP_DONE)."""

HISTORY = 50


@dataclass(frozen=True)
class Transition:
    at: float
    """The caller's monotonic time."""
    from_state: DcState
    to_state: DcState
    reason: str


class DcStateMachine:
    """Holds the state, the sticky admin fence, the reason of the last fence and a history.

    Invariants (checked by `check_invariants`): admin-fenced implies FENCED; WRITABLE
    implies CATCHING_UP was entered since the last entry into FENCED.
    """

    def __init__(self, now: float) -> None:
        self.state = DcState.FENCED
        self.admin_fenced = False
        self.fence_reason: Reason | None = Reason.STARTING
        self.since = now
        """When the current state was entered."""
        self.not_writable_since = now
        """When the DC last stopped being writable (start-up counts: unknown = not writable)."""
        self.ever_writable = False
        self.history: deque[Transition] = deque(maxlen=HISTORY)
        self._through_catchup = False

    def fire(self, event: DcEvent, now: float, reason: Reason | None = None) -> DcState:
        """Apply `event`; return the new state. Raises IllegalTransition for a missing pair."""
        key = (self.state, event)
        if key not in TRANSITIONS:
            raise IllegalTransition(self.state, event)
        target = TRANSITIONS[key]
        if event is DcEvent.ADMIN_FENCE:
            self.admin_fenced = True
            reason = Reason.FENCED_BY_ADMIN
            self.fence_reason = reason
        elif event is DcEvent.ADMIN_UNFENCE:
            self.admin_fenced = False
            if self.fence_reason is Reason.FENCED_BY_ADMIN:
                self.fence_reason = Reason.NOT_IN_QUORUM
        elif self.admin_fenced:
            target = DcState.FENCED
        elif event is DcEvent.FENCE:
            self.fence_reason = reason or self.fence_reason
        self._move(target, now, reason)
        return self.state

    def _move(self, target: DcState, now: float, reason: Reason | None) -> None:
        if target is self.state:
            return
        label = reason.value if reason is not None else ""
        if target is DcState.CATCHING_UP:
            self._through_catchup = True
            label = label or "quorum-confirmed"
        elif target is DcState.WRITABLE:
            if not self._through_catchup:  # unreachable through the table; kept as a guard
                raise IllegalTransition(self.state, DcEvent.CATCHUP_DONE)
            self.ever_writable = True
            label = label or "caught-up"
        else:
            self._through_catchup = False
        if self.state is DcState.WRITABLE:
            self.not_writable_since = now
        self.history.append(Transition(now, self.state, target, label))
        self.state = target
        self.since = now

    @property
    def through_catchup(self) -> bool:
        """True iff CATCHING_UP was entered since the last entry into FENCED."""
        return self._through_catchup

    def check_invariants(self) -> None:
        """Raise AssertionError if an invariant of the machine is broken."""
        if self.admin_fenced and self.state is not DcState.FENCED:
            raise AssertionError("admin-fenced but not FENCED")
        if self.state is DcState.WRITABLE and not self._through_catchup:
            raise AssertionError("WRITABLE without CATCHING_UP since the last fence")
        if self.state is DcState.FENCED and self._through_catchup:
            raise AssertionError("FENCED but still marked as caught up")
