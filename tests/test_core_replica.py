"""ReplicaCore unit tests: hand-written Consul responses on specific paths."""

from __future__ import annotations

import dataclasses
import itertools
import json

import pytest
from test_core_replica_driver import (
    SID,
    Driver,
    entry,
    ok,
    peer_row,
    text,
    topo,
    txn_ok,
    txn_rolled_back,
)

from coordinator.consul.errors import ConsulTimeout, ConsulUnreachable
from coordinator.consul.sansio import Response
from coordinator.core.dcstate import DcState
from coordinator.core.protocol import AdminAction, Reason, RunHook
from coordinator.core.replica import ReplicaCore
from coordinator.core.topology import CatchUp

EPOCH = "coordinator/c1/dc/dc1/epoch"


def state(d: Driver) -> DcState:
    """The DC state (a function so that type checkers do not narrow it across calls)."""
    return d.core.state


def driver(**kw: object) -> Driver:
    return Driver(ReplicaCore(topo(**kw), "dc1", "r1", api_address="10.0.0.1:8080"))  # type: ignore[arg-type]


def test_startup_answers_no_with_starting() -> None:
    d = driver()
    assert d.core.may_write(0.0).reason is Reason.STARTING
    d.start()
    ans = d.core.may_write(0.0)
    assert not ans.allowed and ans.reason is Reason.STARTING and ans.token is None and ans.valid_for == 0


def test_round_sends_txn_with_check_session_and_peer_reads_at_t0() -> None:
    d = driver()
    d.to_leader()
    txn = d.request("round.txn")
    ops = json.loads(txn.body or b"")
    assert ops[0]["KV"] == {"Verb": "check-session", "Key": "coordinator/c1/dc/dc1/leader", "Session": SID}
    assert ops[1]["KV"]["Verb"] == "set" and ops[1]["KV"]["Key"] == "coordinator/c1/dc/dc1/row"
    peers = [d.pending[t] for t in d.tags("round.peer")]
    assert sorted(dict(r.params)["dc"] for r in peers) == ["dc2", "dc3"]
    assert all(("consistent", "") in r.params and r.timeout == d.core.timers.probe_timeout for r in peers)


def test_first_round_gives_no_evidence_second_confirms_then_catching_up() -> None:
    d = driver()
    d.to_leader()
    d.round(1)
    assert state(d) is DcState.FENCED
    assert d.core.may_write(d.now).reason is Reason.NOT_IN_QUORUM
    d.next_round(2)
    assert state(d) is DcState.CATCHING_UP
    assert d.core.may_write(d.now).reason is Reason.CATCHING_UP
    assert d.has("catchup.epoch_read")


def test_token_is_the_epoch_modify_index_and_lease_counts_from_t0() -> None:
    d = driver()
    d.to_catching_up()
    t0 = d.core.last_round.t0 if d.core.last_round else -1.0
    d.now += 0.05
    d.mint(token=77)
    ans = d.core.may_write(d.now)
    assert ans.allowed and ans.token == 77 and ans.reason is None
    assert ans.valid_for == t0 + d.core.timers.lease - d.now
    assert set(ans.quorum) == {"dc1", "dc2", "dc3"}
    assert ans.leader == "r1"


def test_mint_cas_uses_last_seen_index_and_retries_on_conflict() -> None:
    d = driver()
    d.to_catching_up()
    d.answer("catchup.epoch_read", ok([entry(EPOCH, b"{}", modify=30)]))
    ops = json.loads(d.request("catchup.mint").body or b"")
    assert ops[0]["KV"]["Verb"] == "check-session"
    assert ops[1]["KV"]["Verb"] == "cas" and ops[1]["KV"]["Index"] == 30
    d.answer("catchup.mint", txn_rolled_back(1, "current modify index 31 != 30"))
    assert state(d) is DcState.CATCHING_UP
    d.answer("catchup.epoch_read", ok([entry(EPOCH, b"{}", modify=31)]))
    ops = json.loads(d.request("catchup.mint").body or b"")
    assert ops[1]["KV"]["Index"] == 31
    d.answer("catchup.mint", txn_ok(entry("l", None), entry(EPOCH, None, modify=40)))
    assert d.core.may_write(d.now).token == 40


def test_mint_rollback_on_check_session_means_leadership_lost() -> None:
    d = driver()
    d.to_catching_up()
    d.answer("catchup.epoch_read", Response(404, {"x-consul-index": "3"}))
    d.answer("catchup.mint", txn_rolled_back(0, 'lock not held by session "x"'))
    assert not d.core.election.is_leader
    assert state(d) is DcState.FENCED
    assert d.core.may_write(d.now).reason is Reason.NOT_LEADER


def test_round_txn_rollback_steps_down() -> None:
    d = driver()
    d.to_writable()
    d.next_round(3, txn=txn_rolled_back(0, "lock not held"))
    assert not d.core.election.is_leader
    assert state(d) is DcState.FENCED
    ans = d.core.may_write(d.now)
    assert not ans.allowed and ans.reason is Reason.NOT_LEADER and ans.token is None
    assert not d.has("round.txn") and d.core.prober is None


def test_local_timeout_answers_no_at_once_and_fences_when_the_lease_runs_out() -> None:
    d = driver()
    d.to_writable()
    expiry = d.core.lease_expiry
    assert expiry is not None
    d.next_round(3, txn=ConsulTimeout("timed out"))
    ans = d.core.may_write(d.now)
    assert not ans.allowed and ans.reason is Reason.CONSUL_UNAVAILABLE and ans.token is None
    assert d.core.health.failures == 1
    d.advance(expiry)
    assert state(d) is DcState.FENCED
    assert d.core.token is None
    assert not d.core.may_write(d.now).allowed


def test_local_error_healed_within_the_lease_keeps_the_token() -> None:
    d = driver()
    d.to_writable(token=42)
    d.next_round(3, txn=ConsulTimeout("timed out"))
    assert not d.core.may_write(d.now).allowed
    d.next_round(4)
    ans = d.core.may_write(d.now)
    assert ans.allowed and ans.token == 42
    assert state(d) is DcState.WRITABLE


def test_no_cluster_leader_answers_no_consul_leader_then_fences_at_lease_end() -> None:
    d = driver()
    d.to_writable()
    expiry = d.core.lease_expiry
    assert expiry is not None
    d.next_round(3, txn=text(500, "No cluster leader"))
    assert d.core.may_write(d.now).reason is Reason.NO_CONSUL_LEADER
    assert d.core.status(d.now).consul_error
    d.advance(expiry)
    assert state(d) is DcState.FENCED
    assert d.core.may_write(d.now).reason is Reason.NO_CONSUL_LEADER


def test_one_unconfirmed_round_keeps_the_yes_until_the_lease_runs_out() -> None:
    """A slow or lost probe is not a partition: the lease, not one round, ends a yes."""
    d = driver()
    d.to_writable(token=42)
    d.next_round(3, peers_ok=False)
    expiry = d.core.lease_expiry
    assert expiry is not None and d.now < expiry
    ans = d.core.may_write(d.now)
    assert ans.allowed and ans.token == 42
    assert ans.valid_for == expiry - d.now
    d.next_round(4)
    ans = d.core.may_write(d.now)
    assert ans.allowed and ans.token == 42
    assert d.core.lease_expiry is not None and d.core.lease_expiry > expiry


def test_a_failed_read_makes_the_peer_down_in_the_next_round() -> None:
    """Fence latency: confirmation stops at the first round whose peer reads fail."""
    d = driver()
    d.to_writable(token=42)
    d.next_round(3)
    confirmed_expiry = d.core.lease_expiry
    d.next_round(4, peers_ok=False)
    assert d.core.lease_expiry == confirmed_expiry
    assert not d.core.last_round_confirmed


def test_non_consul_exception_from_shell_reads_as_unavailable() -> None:
    d = driver()
    d.to_writable()
    d.next_round(3, txn=OSError("boom"))
    assert d.core.may_write(d.now).reason is Reason.CONSUL_UNAVAILABLE


def test_peer_failures_only_mark_peer_unobserved() -> None:
    d = driver()
    d.to_writable()
    seq = 3
    while state(d) is DcState.WRITABLE:
        assert d.now < 5.0, "stale peers must fence within row_fresh + a few rounds"
        d.next_round(seq, peers_ok=False)
        assert d.core.health.error is None
        seq += 1
    assert state(d) is DcState.FENCED
    assert d.core.may_write(d.now).reason is Reason.NOT_IN_QUORUM


def test_lease_expiry_is_a_deadline_and_bumps_answer_index() -> None:
    # lease = probe_interval + probe_timeout: an unanswered round outlives the lease.
    t = topo()
    t = dataclasses.replace(t, timers=dataclasses.replace(t.timers, lease=0.9))
    d = Driver(ReplicaCore(t, "dc1", "r1"))
    d.to_writable()
    expiry = d.core.lease_expiry
    assert expiry is not None
    index = d.core.answer_index
    while d.now < expiry:
        deadline = d.core.next_deadline()
        assert deadline is not None and deadline <= expiry
        d.now = deadline
        d.feed(d.core.on_timer(d.now))
        if d.now < expiry:
            assert d.core.may_write(d.now).allowed
    assert d.now == expiry
    ans = d.core.may_write(d.now)
    # The leader also steps down: it could not confirm its leadership within the lease.
    assert not ans.allowed and ans.reason in (Reason.LEASE_EXPIRED, Reason.NOT_LEADER)
    assert d.core.answer_index == index + 1 == ans.index
    assert state(d) is DcState.FENCED
    assert d.core.status(d.now).transitions[-1].reason == "lease-expired"


def test_paused_process_wakes_up_fenced() -> None:
    d = driver()
    d.to_writable()
    expiry = d.core.lease_expiry
    assert expiry is not None
    next_deadline = d.core.next_deadline()
    assert next_deadline is not None and next_deadline <= expiry
    d.now = expiry + 3.0
    d.feed(d.core.on_timer(d.now))
    ans = d.core.may_write(d.now)
    assert not ans.allowed and ans.reason in (Reason.LEASE_EXPIRED, Reason.NOT_LEADER)
    assert state(d) is DcState.FENCED
    assert any(t.reason == "lease-expired" for t in d.core.status(d.now).transitions)


def test_may_write_after_lease_end_says_no_even_before_on_timer() -> None:
    d = driver()
    d.to_writable()
    expiry = d.core.lease_expiry
    assert expiry is not None
    ans = d.core.may_write(expiry)
    assert not ans.allowed and ans.reason is Reason.LEASE_EXPIRED


def test_admin_fence_is_sticky_and_unfence_needs_a_new_catch_up() -> None:
    d = driver()
    d.to_writable(token=42)
    d.feed(d.core.on_admin(AdminAction.FENCE, d.now))
    assert d.core.may_write(d.now).reason is Reason.FENCED_BY_ADMIN
    d.next_round(3)
    d.next_round(4)
    assert state(d) is DcState.FENCED
    assert d.core.may_write(d.now).reason is Reason.FENCED_BY_ADMIN
    d.feed(d.core.on_admin(AdminAction.UNFENCE, d.now))
    assert not d.core.may_write(d.now).allowed
    d.next_round(5)
    assert state(d) is DcState.CATCHING_UP
    d.answer("catchup.mint", txn_ok(entry("l", None), entry(EPOCH, None, modify=50)))
    assert d.core.may_write(d.now).token == 50


def test_hook_exit_zero_makes_writable_with_env() -> None:
    d = driver(catch_up=CatchUp(hook=("/bin/sync-db", "--fast")))
    d.to_catching_up()
    d.mint(token=42)
    assert state(d) is DcState.CATCHING_UP
    hook = d.hooks[0]
    assert isinstance(hook, RunHook)
    assert hook.argv == ("/bin/sync-db", "--fast")
    assert hook.timeout == d.core.timers.catchup_timeout
    assert hook.env["COORDINATOR_DC"] == "dc1"
    assert hook.env["COORDINATOR_CLUSTER"] == "c1"
    assert hook.env["COORDINATOR_TOKEN"] == "42"
    assert float(hook.env["COORDINATOR_FENCED_SECONDS"]) >= 0
    d.hook_done(0)
    assert d.core.may_write(d.now).allowed


def test_hook_failure_and_timeout_fence_and_back_off() -> None:
    for code in (1, None):
        d = driver(catch_up=CatchUp(hook=("h",)))
        d.to_catching_up()
        d.mint()
        d.hook_done(code)
        assert state(d) is DcState.FENCED
        assert d.core.may_write(d.now).reason is Reason.CATCHING_UP
        retry_at = d.core.catchup.retry_at
        assert retry_at > d.now
        d.next_round(3)
        assert state(d) is DcState.FENCED or d.now >= retry_at


def test_hook_never_reported_times_out_on_the_core_deadline() -> None:
    d = driver(catch_up=CatchUp(hook=("h",)))
    d.to_catching_up()
    d.mint()
    assert d.core.catchup.hook_tag is not None
    deadline = d.core.catchup.hook_deadline
    d.core.catchup.on_timer(deadline)
    assert d.core.catchup.hook_tag is None
    assert d.core.catchup.phase == "failed"


def test_wait_for_admin_needs_caught_up() -> None:
    d = driver(catch_up=CatchUp(wait_for_admin=True))
    d.to_catching_up()
    d.mint()
    assert state(d) is DcState.CATCHING_UP
    d.feed(d.core.on_admin(AdminAction.CAUGHT_UP, d.now))
    assert d.core.may_write(d.now).allowed


def test_copy_prefixes_from_a_quorum_member_in_chunks() -> None:
    d = driver(catch_up=CatchUp(copy_prefixes=("app/",)))
    d.to_catching_up()
    d.mint()
    read = d.request("catchup.copy_read")
    assert dict(read.params)["dc"] in ("dc2", "dc3") and ("recurse", "") in read.params
    entries = [entry(f"app/k{i:03d}", b"v", modify=i + 1) for i in range(100)]
    entries.append(entry("coordinator/c1/dc/dc2/row", b"{}"))
    d.answer("catchup.copy_read", ok(entries))
    first = json.loads(d.request("catchup.copy_write").body or b"")
    assert len(first) == 64 and first[0]["KV"]["Verb"] == "check-session"
    assert all(op["KV"]["Key"].startswith("app/") for op in first[1:])
    d.answer("catchup.copy_write", txn_ok())
    second = json.loads(d.request("catchup.copy_write").body or b"")
    assert len(second) == 1 + 100 - 63
    d.answer("catchup.copy_write", txn_ok())
    assert d.core.may_write(d.now).allowed


def test_quorum_loss_during_catch_up_fences_and_cancels() -> None:
    d = driver(catch_up=CatchUp(copy_prefixes=("app/",)))
    d.to_catching_up()
    d.mint()
    assert d.has("catchup.copy_read")
    seq = 3
    while state(d) is DcState.CATCHING_UP:
        assert d.now < 5.0
        d.next_round(seq, peers_ok=False)
        seq += 1
    assert state(d) is DcState.FENCED
    assert not d.has("catchup.copy_read")


def test_witness_probes_but_never_writes() -> None:
    d = Driver(ReplicaCore(topo(witness="dc1"), "dc1", "r1"))
    d.to_leader()
    d.round(1)
    d.next_round(2)
    d.next_round(3)
    assert state(d) is DcState.FENCED
    assert d.core.may_write(d.now).reason is Reason.WITNESS
    assert d.core.last_round is not None and d.core.last_round.confirmed
    assert not d.has("catchup.epoch_read")


def test_status_snapshot_is_plain_builtins() -> None:
    d = driver()
    d.to_writable()
    snap = d.core.status(d.now)
    encoded = json.dumps(dataclasses.asdict(snap))
    assert snap.role == "leader" and snap.dc_state == "writable" and snap.allowed
    assert snap.token == 42 and snap.lease_remaining > 0
    assert snap.quorum is not None and snap.quorum.in_quorum
    assert snap.directed["dc1"]["dc2"] and snap.undirected["dc2"]["dc1"]
    assert [t.to_state for t in snap.transitions] == ["catching-up", "writable"]
    assert "takeover_after" in snap.timers
    assert '"replica_id": "r1"' in encoded


def test_peer_rows_carry_our_evidence_in_the_next_round() -> None:
    d = driver()
    d.to_writable()
    d.advance(d.core.prober.next_round_at if d.core.prober else 0.0)
    ops = json.loads(d.request("round.txn").body or b"")
    import base64

    row = json.loads(base64.b64decode(ops[1]["KV"]["Value"]))
    assert row["dc"] == "dc1" and row["state"] == "writable"
    assert row["reach"]["dc2"]["ok"] is True
    assert row["leader"] == f"r1/{SID}"


def test_unknown_tags_are_ignored() -> None:
    d = driver()
    d.start()
    assert d.core.on_response("nope#1", ok(True), 0.0) == []


@pytest.mark.parametrize("order", list(itertools.permutations(range(4))))
def test_errors_never_escape_on_garbage(order: tuple[int, ...]) -> None:
    """Garbage in any order never raises; garbage on the leader-key watch answers no.

    (A 200 to `check/pass` has no body to be wrong, so garbage there is a success and may
    clear an earlier error: the lease of the last confirming round still holds then.)
    """
    d = driver()
    d.to_writable()
    kinds = sorted({t.split("#")[0] for t in d.pending})
    assert len(kinds) == len(order)
    for i in order:
        d.answer(kinds[i], Response(200, {}, b"\xff garbage"))
        if kinds[i] == "lock.watch":
            assert not d.core.may_write(d.now).allowed


def test_peer_row_helper_is_decodable() -> None:
    resp = peer_row("dc2", 3, ("dc1", "dc2", "dc3"))
    assert resp.status == 200


def test_consul_unreachable_on_check_pass_fences_follower_reason() -> None:
    d = driver()
    d.start()
    d.answer("lock.check_register", ConsulUnreachable("refused"))
    assert d.core.may_write(d.now).reason is Reason.CONSUL_UNAVAILABLE
    d.advance(d.now + 1.0)
    assert d.has("lock.check_register")


def test_lease_end_after_unconfirmed_rounds_names_the_round_reason() -> None:
    """An isolated DC fences at its lease end with reason not-in-quorum, not lease-expired."""
    d = driver()
    d.to_writable()
    seq = 3
    while state(d) is DcState.WRITABLE:
        assert d.now < 5.0
        d.next_round(seq, peers_ok=False)
        seq += 1
    fence = d.core.status(d.now).transitions[-1]
    assert fence.to_state == "fenced" and fence.reason == "not-in-quorum"
    assert d.core.may_write(d.now).reason is Reason.NOT_IN_QUORUM

