"""The DC write-state machine: transition table, sticky admin fence, invariants."""

from __future__ import annotations

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from coordinator.core.dcstate import (
    TRANSITIONS,
    DcEvent,
    DcState,
    DcStateMachine,
    IllegalTransition,
)
from coordinator.core.protocol import Reason

F, C, W = DcState.FENCED, DcState.CATCHING_UP, DcState.WRITABLE


def test_starts_fenced_with_reason_starting() -> None:
    m = DcStateMachine(5.0)
    assert m.state is F
    assert m.fence_reason is Reason.STARTING
    assert m.not_writable_since == 5.0
    assert not m.ever_writable


def test_no_edge_from_fenced_to_writable() -> None:
    assert all(target is not W for (state, _), target in TRANSITIONS.items() if state is F)
    m = DcStateMachine(0.0)
    with pytest.raises(IllegalTransition):
        m.fire(DcEvent.CATCHUP_DONE, 1.0)
    assert m.state is F


def test_full_cycle_records_history_and_fenced_time() -> None:
    m = DcStateMachine(0.0)
    m.fire(DcEvent.QUORUM_CONFIRMED, 1.0)
    m.fire(DcEvent.CATCHUP_DONE, 2.0)
    assert m.state is W and m.ever_writable
    m.fire(DcEvent.FENCE, 5.0, Reason.LEASE_EXPIRED)
    assert m.state is F and m.fence_reason is Reason.LEASE_EXPIRED
    assert m.not_writable_since == 5.0
    assert [(t.from_state, t.to_state, t.reason) for t in m.history] == [
        (F, C, "quorum-confirmed"),
        (C, W, "caught-up"),
        (W, F, "lease-expired"),
    ]
    with pytest.raises(IllegalTransition):
        m.fire(DcEvent.CATCHUP_DONE, 6.0)


def test_catchup_done_twice_is_illegal() -> None:
    m = DcStateMachine(0.0)
    m.fire(DcEvent.QUORUM_CONFIRMED, 1.0)
    m.fire(DcEvent.CATCHUP_DONE, 2.0)
    with pytest.raises(IllegalTransition):
        m.fire(DcEvent.CATCHUP_DONE, 3.0)


def test_admin_fence_is_sticky_until_unfence() -> None:
    m = DcStateMachine(0.0)
    m.fire(DcEvent.QUORUM_CONFIRMED, 1.0)
    m.fire(DcEvent.ADMIN_FENCE, 2.0)
    assert m.state is F and m.admin_fenced and m.fence_reason is Reason.FENCED_BY_ADMIN
    m.fire(DcEvent.QUORUM_CONFIRMED, 3.0)
    assert m.state is F
    m.fire(DcEvent.FENCE, 3.5, Reason.NOT_IN_QUORUM)
    assert m.fence_reason is Reason.FENCED_BY_ADMIN
    m.fire(DcEvent.ADMIN_UNFENCE, 4.0)
    assert m.state is F and not m.admin_fenced
    m.fire(DcEvent.QUORUM_CONFIRMED, 5.0)
    assert m.state is C


def test_history_is_bounded() -> None:
    m = DcStateMachine(0.0)
    for i in range(200):
        m.fire(DcEvent.QUORUM_CONFIRMED, float(i))
        m.fire(DcEvent.FENCE, i + 0.5, Reason.NOT_IN_QUORUM)
    assert len(m.history) == 50
    assert m.history[-1].at == 199.5


class DcStateMachineModel(RuleBasedStateMachine):
    """Random event sequences: the machine follows the table, and the invariants hold."""

    def __init__(self) -> None:
        super().__init__()
        self.m = DcStateMachine(0.0)
        self.now = 0.0
        self.admin = False
        self.caught_up_since_fence = False

    @rule(event=st.sampled_from(list(DcEvent)), reason=st.sampled_from(list(Reason)))
    def fire(self, event: DcEvent, reason: Reason) -> None:
        self.now += 1.0
        before = self.m.state
        if (before, event) not in TRANSITIONS:
            with pytest.raises(IllegalTransition):
                self.m.fire(event, self.now, reason)
            assert self.m.state is before
            return
        after = self.m.fire(event, self.now, reason)
        if event is DcEvent.ADMIN_FENCE:
            self.admin = True
        elif event is DcEvent.ADMIN_UNFENCE:
            self.admin = False
        expected = F if self.admin else TRANSITIONS[(before, event)]
        assert after is expected
        if after is F:
            self.caught_up_since_fence = False
        if after is C:
            self.caught_up_since_fence = True
        if after is W:
            assert before in (C, W)

    @precondition(lambda self: self.m.state is W)
    @rule()
    def writable_must_have_come_through_catching_up(self) -> None:
        assert self.caught_up_since_fence

    @invariant()
    def check_all(self) -> None:
        self.m.check_invariants()
        assert self.m.admin_fenced == self.admin
        if self.m.state is W:
            assert self.m.through_catchup and self.caught_up_since_fence
        for t in self.m.history:
            assert not (t.from_state is F and t.to_state is W)


TestDcStateMachine = DcStateMachineModel.TestCase
