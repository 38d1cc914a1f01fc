"""Random operation sequences on the pure DC model keep Consul's invariants.

After every step `Datacenter.check_invariants()` runs (indexes never go backwards, a key is
held only by a live session, LockIndex drops only when the entry is rewritten) plus the
properties below, checked against what the test itself observed.

LockIndex, as Consul's kvs.go computes it (kvsLockTxn, kvsUnlockTxn, kvsSetTxn): it counts
lock acquisitions since the key's last plain write. An acquisition by a new holder sets it
to previous + 1 (1 on a new key); a re-acquisition by the holder, a release and a session
invalidation keep it; a plain/CAS write (PUT, txn `set`/`cas`) resets it to 0 and keeps the
Session. It is therefore monotonic across acquisitions only, not across plain writes.
"""

from __future__ import annotations

import random

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from sim.consul.catalog import PASSING, Check
from sim.consul.durations import SECOND
from sim.consul.errors import ConsulError
from sim.consul.model import Datacenter, DcConfig
from sim.consul.txn import TxnOp

KEYS = st.sampled_from(["a", "b", "c/d", "c/e"])
MODES = st.sampled_from(["ttl", "2ttl", "random"])


class DcMachine(RuleBasedStateMachine):
    dc: Datacenter
    now: float
    last_index: int

    @initialize(mode=MODES, seed=st.integers(0, 2**16))
    def setup(self, mode: str, seed: int) -> None:
        self.dc = Datacenter(DcConfig("dc1", session_expiry=mode), random.Random(seed))  # type: ignore[arg-type]
        self.now = 0.0
        self.last_index = self.dc.index
        self.dc.agent_check_register(Check("", "c", "c", PASSING, ttl_ns=15 * SECOND), 0.0)

    def _sid(self, pick: int) -> str:
        ids = sorted(self.dc.sessions)
        return ids[pick % len(ids)] if ids else "no-such-session"

    @rule(ttl=st.sampled_from([0, 10, 30]), delay=st.sampled_from([0, 5, 15, 90]),
          checks=st.sampled_from([(), ("serfHealth",), ("c",)]), delete=st.booleans())
    def create_session(self, ttl: int, delay: int, checks: tuple[str, ...], delete: bool) -> None:
        if not self.dc.leader:
            return
        try:
            self.dc.session_create(self.now, ttl=f"{ttl}s" if ttl else "", ttl_ns=ttl * SECOND,
                                   lock_delay_ns=delay * SECOND, node_checks=checks,
                                   behavior="delete" if delete else "release")
        except ConsulError as err:
            assert err.message == "Check 'c' is in critical state"

    @rule(key=KEYS, pick=st.integers(0, 7))
    def acquire(self, key: str, pick: int) -> None:
        if not self.dc.leader:
            return
        sid = self._sid(pick)
        before = self.dc.kv.get(key)
        try:
            ok = self.dc.kv_apply("lock", key, b"v", session=sid, now=self.now)
        except ConsulError as err:
            assert err.message.startswith("invalid session")
            return
        after = self.dc.kv.get(key)
        if ok:
            assert after is not None and after.session == sid
            if before is not None and before.session == sid:
                assert after.lock_index == before.lock_index
            elif before is not None:
                assert after.lock_index == before.lock_index + 1
            else:
                assert after.lock_index == 1
        else:
            assert after == before

    @rule(key=KEYS, pick=st.integers(0, 7))
    def release(self, key: str, pick: int) -> None:
        if not self.dc.leader:
            return
        sid = self._sid(pick)
        before = self.dc.kv.get(key)
        ok = self.dc.kv_apply("unlock", key, None, session=sid, now=self.now)
        after = self.dc.kv.get(key)
        assert ok == (before is not None and before.session == sid)
        if ok:
            assert before is not None and after is not None
            assert after.session == "" and after.lock_index == before.lock_index
        else:
            assert after == before

    @rule(key=KEYS)
    def plain_put_or_delete(self, key: str) -> None:
        if not self.dc.leader:
            return
        before = self.dc.kv.get(key)
        assert self.dc.kv_apply("set", key, b"p", now=self.now)
        after = self.dc.kv.get(key)
        assert after is not None and after.value == b"p"
        assert after.lock_index == 0, "a plain write resets LockIndex (kvsSetTxn)"
        assert after.session == (before.session if before is not None else "")

    @rule(key=KEYS, cas=st.integers(0, 40))
    def delete_cas(self, key: str, cas: int) -> None:
        if self.dc.leader:
            self.dc.kv_apply("delete-cas", key, index=cas, now=self.now)

    @rule(keys=st.lists(KEYS, min_size=1, max_size=4), pick=st.integers(0, 7), fail=st.booleans())
    def txn(self, keys: list[str], pick: int, fail: bool) -> None:
        if not self.dc.leader:
            return
        before = (self.dc.index, dict(self.dc.kv.entries))
        ops = [TxnOp("lock", k, b"t", session=self._sid(pick)) for k in keys]
        if fail:
            ops.append(TxnOp("check-index", "a", index=10**9))
        outcome = self.dc.txn(ops, self.now)
        if outcome.errors is not None:
            assert (self.dc.index, dict(self.dc.kv.entries)) == before
            return
        sid = self._sid(pick)
        for k in set(keys):
            old, new = before[1].get(k), self.dc.kv.get(k)
            assert new is not None and new.session == sid
            if old is None:
                assert new.lock_index == 1
            elif old.session == sid:
                assert new.lock_index == old.lock_index
            else:
                assert new.lock_index == old.lock_index + 1

    @rule(pick=st.integers(0, 7))
    def destroy(self, pick: int) -> None:
        if self.dc.leader:
            self.dc.session_destroy(self._sid(pick), self.now)

    @rule(pick=st.integers(0, 7))
    def renew(self, pick: int) -> None:
        if self.dc.leader:
            self.dc.session_renew(self._sid(pick), self.now)

    @rule(status=st.sampled_from(["passing", "critical"]))
    def update_check(self, status: str) -> None:
        self.dc.agent_check_update("c", status, "", self.now)

    @rule(dt=st.floats(0.0, 40.0))
    def tick(self, dt: float) -> None:
        self.now += dt
        self.dc.advance(self.now)

    @precondition(lambda self: self.dc.leader)
    @rule()
    def lose_leader(self) -> None:
        self.dc.set_leader(False, self.now)

    @precondition(lambda self: not self.dc.leader)
    @rule()
    def regain_leader(self) -> None:
        self.dc.set_leader(True, self.now)

    @invariant()
    def invariants_hold(self) -> None:
        self.dc.check_invariants()
        assert self.dc.index >= self.last_index
        self.last_index = self.dc.index
        for entry in self.dc.kv.entries.values():
            if entry.session:
                assert entry.session in self.dc.sessions
        deadline = self.dc.next_deadline()
        assert deadline is None or deadline >= 0


TestDcMachine = DcMachine.TestCase
