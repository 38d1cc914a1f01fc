"""The global lock hosted by real ReplicaCores (3 DCs x 2 replicas) on the pure emulator.

Uses the fixed-step world of test_core_replica_e2e. Checks: exactly one DC leader holds
the lock; its answer is bounded by its DC's may-write lease; isolating the holder's DC
ends its hold (DC fence) and a majority-side DC takes over with a higher term; followers
never hold.
"""

from __future__ import annotations

from test_core_replica_e2e import DCS, World

from coordinator.core.replica import ReplicaCore
from coordinator.core.topology import DcSpec, GlobalLockSpec, Topology


def _topology() -> Topology:
    return Topology("e2e", tuple(DcSpec(d) for d in DCS), global_locks=(GlobalLockSpec("mail"),))


def _holders(w: World) -> list[tuple[ReplicaCore, int]]:
    out = []
    for core in w.all_cores():
        if not w.alive(core):
            continue
        ans = core.globals.answer("mail", w.now)
        assert ans is not None
        if ans.held:
            assert ans.term is not None
            out.append((core, ans.term))
            dc_ans = core.may_write(w.now)
            assert dc_ans.allowed and ans.valid_for <= dc_ans.valid_for + 1e-9
    return out


def _run_checked(w: World, seconds: float) -> list[tuple[ReplicaCore, int]]:
    seen: list[tuple[ReplicaCore, int]] = []
    end = w.now + seconds
    while w.now < end:
        w.step()
        held = _holders(w)
        assert len(held) <= 1, [(c.replica_id, t) for c, t in held]
        for item in held:
            if not seen or seen[-1][0] is not item[0]:
                seen.append(item)
    return seen


def test_dc_leaders_elect_one_global_holder_and_fail_over_on_isolation() -> None:
    w = World(_topology())
    seen = _run_checked(w, 10.0)
    assert w.violations == []
    assert seen, "someone acquires the lock"
    holder, term = seen[-1]
    assert holder.election.is_leader
    w.cut(holder.dc, up=False)
    after = _run_checked(w, 15.0)
    assert after and after[-1][0].dc != holder.dc
    assert after[-1][1] > term
    assert holder.globals.answer("mail", w.now) is not None
    assert not holder.globals.answer("mail", w.now).held  # type: ignore[union-attr]
    w.cut(holder.dc, up=True)
    final = _run_checked(w, 10.0)
    terms = [t for _, t in seen + after + final]
    assert terms == sorted(terms)
