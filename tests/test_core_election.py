"""Local leader election through ReplicaCore: check, session, acquire, watch, step-down, shutdown."""

from __future__ import annotations

import json

from test_core_replica_driver import OTHER_SID, SID, Driver, entry, ok, text, topo

from coordinator.consul.errors import ConsulTimeout
from coordinator.consul.sansio import Response
from coordinator.core.election import Role
from coordinator.core.leader_key import leader_id_of, leader_value
from coordinator.core.protocol import AdminAction, Reason
from coordinator.core.replica import ReplicaCore

LEADER_KEY = "coordinator/c1/dc/dc1/leader"


def driver() -> Driver:
    return Driver(ReplicaCore(topo(), "dc1", "r1", api_address="10.0.0.1:8080"))


def role(d: Driver) -> Role:
    return d.core.election.role


def watch_reply(session: str | None, index: int = 20, ident: str = "r2") -> Response:
    return ok([entry(LEADER_KEY, leader_value(ident, None), modify=index, session=session)], index=index)


def test_check_registered_then_passed_then_session_bound_to_it_only() -> None:
    d = driver()
    d.start()
    reg = d.request("lock.check_register")
    body = json.loads(reg.body or b"")
    assert reg.path == "/v1/agent/check/register"
    assert body["TTL"] == "1.5s" and body["ID"] == d.core.election.check_id
    d.answer("lock.check_register", ok(None))
    assert d.request("lock.check_pass").path == f"/v1/agent/check/pass/{d.core.election.check_id}"
    assert not d.has("lock.session_create")
    d.answer("lock.check_pass", ok(None))
    create = json.loads(d.request("lock.session_create").body or b"")
    # NodeChecks alone: a Checks key without NodeChecks keeps Consul's default serfHealth.
    assert create["NodeChecks"] == [d.core.election.check_id]
    assert "Checks" not in create
    assert create["TTL"] == "10s" and create["LockDelay"] == "2s" and create["Behavior"] == "release"


def test_check_passed_every_interval() -> None:
    d = driver()
    d.start()
    d.answer("lock.check_register", ok(None))
    d.answer("lock.check_pass", ok(None))
    d.advance(0.49)
    assert not d.has("lock.check_pass")
    d.advance(0.5)
    assert d.has("lock.check_pass")


def test_acquire_true_makes_leader_with_value() -> None:
    d = driver()
    d.start()
    d.to_session()
    acq = d.request("lock.acquire")
    assert acq.method == "PUT" and acq.path == f"/v1/kv/{LEADER_KEY}"
    assert ("acquire", SID) in acq.params
    assert json.loads(acq.body or b"") == {"id": "r1", "api": "10.0.0.1:8080"}
    d.answer("lock.acquire", ok(True))
    assert role(d) is Role.LEADER
    assert d.core.election.leader_id == "r1"
    assert d.has("round.txn")


def test_acquire_false_retries_on_short_timer_while_key_free() -> None:
    d = driver()
    d.start()
    d.to_session()
    d.answer("lock.watch", watch_reply(None))
    d.answer("lock.acquire", ok(False))
    assert role(d) is Role.CANDIDATE and not d.has("lock.acquire")
    d.advance(d.now + d.core.timers.probe_interval)
    assert d.has("lock.acquire")
    d.answer("lock.acquire", ok(True))
    assert role(d) is Role.LEADER


def test_follower_when_someone_else_holds_and_acquires_when_freed() -> None:
    d = driver()
    d.start()
    d.to_session()
    d.answer("lock.acquire", ok(False))
    d.answer("lock.watch", watch_reply(OTHER_SID, index=20))
    assert role(d) is Role.FOLLOWER
    assert d.core.election.leader_id == "r2"
    assert d.core.may_write(d.now).reason is Reason.NOT_LEADER
    assert d.core.may_write(d.now).leader == "r2"
    watch = d.request("lock.watch")
    assert ("consistent", "") in watch.params and ("index", "20") in watch.params
    d.advance(d.now + 2.0)
    assert not d.has("lock.acquire")
    d.answer("lock.watch", watch_reply(None, index=25))
    assert d.has("lock.acquire")


def test_session_renewed_every_third_of_ttl() -> None:
    d = driver()
    d.start()
    d.to_session()
    t_created = d.now
    d.advance(t_created + 10.0 / 3 - 0.01)
    assert not d.has("lock.renew")
    d.advance(t_created + 10.0 / 3)
    renew = d.request("lock.renew")
    assert renew.path == f"/v1/session/renew/{SID}"


def test_renew_404_steps_down_and_creates_a_new_session() -> None:
    d = driver()
    d.to_leader()
    d.advance(10.0 / 3)
    d.answer("lock.renew", text(404, f"Session id '{SID}' not found"))
    assert role(d) is not Role.LEADER
    assert d.core.election.session_id is None
    assert d.core.may_write(d.now).reason is Reason.NOT_LEADER
    assert d.has("lock.session_create")
    assert d.core.prober is None


def test_trusted_watch_showing_other_session_steps_leader_down() -> None:
    d = driver()
    d.to_leader()
    old_watch = d.tags("lock.watch")
    d.answer("lock.watch", watch_reply(None, index=5))
    assert role(d) is Role.LEADER, "a watch sent before we acquired must not depose us"
    assert old_watch
    d.answer("lock.watch", watch_reply(OTHER_SID, index=30))
    assert role(d) is Role.FOLLOWER
    assert d.core.may_write(d.now).reason is Reason.NOT_LEADER


def test_leader_steps_down_without_proof_within_lease() -> None:
    d = driver()
    d.to_leader()
    d.advance(d.core.timers.lease + 0.01)
    assert role(d) is not Role.LEADER
    assert d.core.election.step_downs == 1


def test_step_down_then_own_session_still_on_key_reacquires() -> None:
    d = driver()
    d.to_leader()
    d.advance(d.core.timers.lease + 0.01)
    for tag in list(d.tags("lock.watch")):
        del d.pending[tag]
        d.feed(d.core.on_response(tag, watch_reply(SID, index=40, ident="r1"), d.now))
    d.advance(d.now + 0.01)
    assert d.has("lock.acquire")
    d.answer("lock.acquire", ok(True))
    assert role(d) is Role.LEADER


def test_invalid_session_on_acquire_recreates_session() -> None:
    d = driver()
    d.start()
    d.to_session()
    d.answer("lock.acquire", text(500, f'invalid session "{SID}"'))
    assert d.core.election.session_id is None
    assert d.has("lock.session_create")


def test_local_errors_back_off_exponentially_up_to_cap() -> None:
    d = driver()
    d.start()
    d.answer("lock.check_register", ok(None))
    d.answer("lock.check_pass", ok(None))
    delays = []
    for _ in range(7):
        d.answer("lock.session_create", ConsulTimeout("t"))
        assert d.core.may_write(d.now).reason is Reason.CONSUL_UNAVAILABLE
        sent = d.now
        retry_at = d.core.election._next_session
        d.advance(retry_at - 0.001)
        assert not d.has("lock.session_create"), "retried before its backoff"
        d.advance(retry_at)
        assert d.has("lock.session_create")
        delays.append(round(retry_at - sent, 6))
    base, cap = d.core.health.base, d.core.timers.retry_backoff_max
    assert delays == [min(cap, base * 2**i) for i in range(7)]
    d.answer("lock.session_create", ok({"ID": SID}))
    assert d.core.health.failures == 0 and d.core.health.error is None


def test_shutdown_releases_destroys_deregisters_in_order() -> None:
    d = driver()
    d.to_writable()
    d.feed(d.core.on_admin(AdminAction.SHUTDOWN, d.now))
    assert d.core.may_write(d.now).reason is Reason.SHUTTING_DOWN
    assert not any(t.startswith(("round.", "lock.watch", "lock.check")) for t in d.pending)
    rel = d.request("lock.shutdown_release")
    assert ("release", SID) in rel.params and rel.path == f"/v1/kv/{LEADER_KEY}"
    d.answer("lock.shutdown_release", ok(True))
    assert d.request("lock.shutdown_destroy").path == f"/v1/session/destroy/{SID}"
    d.answer("lock.shutdown_destroy", ConsulTimeout("t"))
    dereg = d.request("lock.shutdown_deregister")
    assert dereg.path == f"/v1/agent/check/deregister/{d.core.election.check_id}"
    assert not d.core.finished
    d.answer("lock.shutdown_deregister", ok(None))
    assert d.core.finished
    assert d.core.next_deadline() is None
    assert d.core.status(d.now).role == "stopped"
    assert d.core.on_admin(AdminAction.UNFENCE, d.now) == []


def test_shutdown_before_start_finishes_at_once() -> None:
    d = driver()
    assert d.core.on_admin(AdminAction.SHUTDOWN, 0.0) == []
    assert d.core.finished
    assert d.core.may_write(0.0).reason is Reason.SHUTTING_DOWN


def test_leader_value_round_trip() -> None:
    assert leader_id_of(leader_value("r9", "h:1")) == "r9"
    assert leader_id_of(b"not json") is None
    assert leader_id_of(b'{"id": 3}') is None
    assert leader_id_of(None) is None
