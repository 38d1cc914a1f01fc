"""A graceful release of a global lock frees the registers only after the last "yes" ran out.

`GlobalLock.answer` records the end of every "yes" it hands out (`granted_until`);
`release` (admin) and `shutdown` stop answering yes at once but defer the release CAS
writes until ``now >= granted_until + drift_pad`` (`yes_over_at`; the pad covers clients'
clock drift), so no two holders' validity windows overlap.
Unit tests on one GlobalLock with hand-made Consul answers, and the admin release on
ReplicaCores in virtual time (test_core_replica_e2e's world).
"""

from __future__ import annotations

from test_core_replica_e2e import World
from test_global_release import SPEC, _holders, _holding_lock, _topology, _wait_holder

from coordinator.core.globallock import GlobalRole
from coordinator.core.protocol import Command, SendRequest

LEASE = 3.0  # GlobalLockSpec() default; _holding_lock's claims are sent at 0.01


def _releases(cmds: list[Command]) -> list[SendRequest]:
    return [c for c in cmds if isinstance(c, SendRequest) and c.tag.startswith("global.g.release")]


def test_release_after_a_yes_defers_the_writes_until_it_ends() -> None:
    lock, _ = _holding_lock()
    ans = lock.answer(0.3)
    assert ans.held
    end = 0.3 + ans.valid_for
    assert end == lock.granted_until == 0.01 + LEASE
    assert 0 < lock.drift_pad < 0.1
    end = lock.yes_over_at
    assert lock.release(0.5) == []
    assert lock.releasing and lock.role is GlobalRole.IDLE
    assert not lock.answer(0.5).held, "no new yes once released"
    assert lock.yes_over_at == end
    t = 0.5
    while t < end - 0.05:
        t = round(t + 0.1, 6)
        cmds = lock.on_timer(t)
        assert _releases(cmds) == [], t
        writes = [c for c in cmds if isinstance(c, SendRequest) and c.request.path == "/v1/txn"]
        assert writes == [], "no new tenure of ours while the release is pending"
    deadline = lock.next_deadline()
    assert deadline is not None and deadline <= end
    at_end = _releases(lock.on_timer(end))
    assert len(at_end) == 3 and all(c.request.path == "/v1/txn" for c in at_end)
    assert lock.releasing  # now in flight


def test_release_with_no_yes_handed_out_goes_at_once() -> None:
    lock, _ = _holding_lock()
    assert lock.valid_until(0.3) is not None  # it holds; valid_until records nothing
    assert len(_releases(lock.release(0.5))) == 3


def test_shutdown_after_a_yes_defers_too_and_stays_releasing() -> None:
    lock, _ = _holding_lock()
    lock.answer(0.3)
    end = lock.yes_over_at
    assert lock.shutdown(1.0) == []
    assert lock.role is GlobalRole.INACTIVE and lock.releasing
    assert lock.next_deadline() == end
    assert lock.on_timer(end - 0.01) == []
    assert len(_releases(lock.on_timer(end))) == 3


def test_stop_drops_a_deferred_release() -> None:
    lock, _ = _holding_lock()
    lock.answer(0.3)
    lock.release(0.5)
    lock.stop(0.6)  # DC leadership lost: send nothing more, the registers lapse
    assert not lock.releasing and lock.next_deadline() is None


def test_admin_release_in_the_world_hands_over_after_the_last_yes() -> None:
    w = World(_topology())
    old, term = _wait_holder(w, 15.0)
    w.run(1.0)
    assert _holders(w) == [(old, term)]  # the yes is handed out
    last_yes_end = old.globals.locks["mail"].granted_until
    log = w.spy_sends(old)
    cmds = old.release_global("mail", 0.0, w.now)
    assert not [c for c in cmds if isinstance(c, SendRequest) and c.tag.startswith("global.mail.release")]
    assert not old.globals.answer("mail", w.now).held  # type: ignore[union-attr]
    w.execute(old, cmds)
    _, new_term = _wait_holder(w, SPEC.lease + SPEC.margin + 1.0)
    assert w.now >= last_yes_end
    assert new_term > term
    sent = [t for t, tag in log if tag.startswith("global.mail.release")]
    assert sent and min(sent) >= last_yes_end
    assert w.violations == []
