"""Pure, clock-injected model of ONE Consul datacenter (servers + the one local agent).

No I/O, no clock, no global randomness: time arrives as `now` (monotonic seconds) and
randomness through an injected `RandomSource`. A shell (asyncio server or discrete-event
simulator) drives it:

- call the write/read methods (usually through `sim.consul.api.Router`);
- after anything, call `advance(now)` to fire due timers (session TTL expiry, agent TTL
  checks turning critical, DeregisterCriticalServiceAfter) and schedule the next wake-up at
  `next_deadline()`;
- watch `version` (bumps on every index change and leader flip) to wake blocked queries;
  a shell that parks many KV watchers may narrow the wake-up with `take_kv_changes()` and
  `leader_epoch` (see `http_types.Watch`).

Raft index: one per DC, strictly increasing, never 0. An index is consumed only when a
write changes state (Consul also consumes one for no-op Raft entries, but those are
invisible through the HTTP API, which only exposes per-table indexes).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace

from sim.consul import catalog as cat
from sim.consul.catalog import AgentState, Catalog, Check, Service
from sim.consul.durations import SECOND
from sim.consul.errors import MISSING_NODE, NO_LEADER, ConsulError
from sim.consul.kv import MAX_LOCK_DELAY, KVStore
from sim.consul.sessions import DELETE, RandomSource, Session, SessionExpiry, expiry_delay
from sim.consul.txn import TxnOp, TxnOutcome, run_txn


@dataclass(frozen=True)
class DcConfig:
    name: str
    node_name: str = ""
    """Defaults to `<name>-server-1`."""
    address: str = "127.0.0.1"
    session_expiry: SessionExpiry = "2ttl"
    rpc_hold_timeout: float = 0.0
    """Real servers hold requests up to 7s waiting for a leader; the emulator defaults to 0."""
    kv_max_value_size: int = 512 * 1024

    @property
    def node(self) -> str:
        return self.node_name or f"{self.name}-server-1"


class Datacenter:
    def __init__(self, config: DcConfig, rng: RandomSource, now: float = 0.0) -> None:
        self.config = config
        self.name = config.name
        self.node = config.node
        self._rng = rng
        self.index = 0
        self.version = 0
        self.kv = KVStore()
        self.catalog = Catalog()
        self.agent = AgentState()
        self.sessions: dict[str, Session] = {}
        self.sessions_index = 0
        self.session_expires: dict[str, float] = {}
        self.leader = True
        self.leader_lost_at: float | None = None
        self.leader_epoch = 0
        """Bumps on every leader flip (every parked query must be re-evaluated then)."""
        self._lock_seen: dict[str, tuple[int, int, int]] = {}
        self._index_seen = 0
        idx = self._next()
        self.catalog.ensure_node(idx, self.node, str(uuid.uuid5(uuid.NAMESPACE_DNS, self.node)),
                                 config.address, self.name)
        self.catalog.put_check(idx, Check(self.node, cat.SERF_CHECK_ID, "Serf Health Status",
                                          cat.PASSING, output="Agent alive and reachable", type=""))
        self.catalog.put_service(idx, Service(self.node, "consul", "consul", port=8300))

    # ---- index & leader -------------------------------------------------------------

    def _next(self) -> int:
        self.index += 1
        self.version += 1
        return self.index

    def take_kv_changes(self) -> tuple[bool, frozenset[str]]:
        """(everything, keys): KV keys written or tombstoned since the previous call
        (single consumer; `everything` means "assume every key changed"). Bounded memory
        even if never called."""
        return self.kv.take_changes()

    def require_leader(self) -> None:
        if not self.leader:
            raise ConsulError(NO_LEADER)

    def last_contact_ms(self, now: float) -> int:
        if self.leader or self.leader_lost_at is None:
            return 0
        return max(0, int((now - self.leader_lost_at) * 1000))

    def set_leader(self, up: bool, now: float) -> None:
        """Leader loss stops session timers; regaining restarts every TTL timer from `now`
        (Consul re-arms all session timers on leadership establishment) and runs the
        agent's anti-entropy sync that was held back."""
        if up == self.leader:
            return
        self.leader = up
        self.leader_epoch += 1
        self.version += 1
        if not up:
            self.leader_lost_at = now
            return
        self.leader_lost_at = None
        for sess in self.sessions.values():
            self._arm(sess, now)
        self._sync(now)

    def new_uuid(self) -> str:
        bits = 0
        for _ in range(4):
            bits = (bits << 32) | int(self._rng.random() * 2**32)
        return str(uuid.UUID(int=bits, version=4))

    # ---- KV -------------------------------------------------------------------------

    def kv_apply(self, verb: str, key: str, value: bytes | None = None, flags: int = 0,
                 index: int = 0, session: str = "", now: float = 0.0) -> bool:
        """KVS.Apply for one op (verbs: set, cas, lock, unlock, delete, delete-cas,
        delete-tree). Returns the boolean Consul returns; raises ConsulError."""
        self.require_leader()
        if verb == "lock" and self.kv.lock_delay_active(key, now):
            return False
        outcome = run_txn(self.kv, self.index + 1, [TxnOp(verb, key, value, flags, index, session)],
                          self.sessions.__contains__, now, single=True)
        if outcome.error is not None:
            raise ConsulError(outcome.error)
        self._commit_kv()
        return outcome.ok

    def txn(self, ops: list[TxnOp], now: float) -> TxnOutcome:
        """Atomic multi-op KV transaction: all applied at one index, or nothing (rolled back)."""
        outcome = run_txn(self.kv, self.index + 1, ops, self.sessions.__contains__, now, single=False)
        if outcome.errors is None:
            self._commit_kv()
        return outcome

    def _commit_kv(self) -> None:
        if self.kv.table_index > self.index:
            self._next()

    # ---- sessions ---------------------------------------------------------------------

    def session_create(self, now: float, *, name: str = "", node: str | None = None,
                       lock_delay_ns: int = 15 * SECOND, behavior: str = "release", ttl: str = "",
                       ttl_ns: int = 0, node_checks: tuple[str, ...] = (cat.SERF_CHECK_ID,),
                       service_checks: tuple[str, ...] = (), show_checks: bool = False) -> Session:
        """Session.Apply(create) after HTTP-level validation (TTL bounds, Behavior)."""
        self.require_leader()
        node = node or self.node
        if node not in self.catalog.nodes:
            raise ConsulError(MISSING_NODE)
        for check_id in (*node_checks, *service_checks):
            check = self.catalog.checks.get((node, check_id))
            if check is None:
                raise ConsulError(f"Missing check '{check_id}' registration")
            if check.status == cat.CRITICAL:
                raise ConsulError(f"Check '{check_id}' is in critical state")
        sid = self.new_uuid()
        idx = self._next()
        sess = Session(sid, name, node, lock_delay_ns, behavior, ttl, ttl_ns, node_checks,
                       service_checks, show_checks, idx, idx)
        self.sessions[sid] = sess
        self.sessions_index = idx
        self._arm(sess, now)
        return sess

    def _arm(self, sess: Session, now: float) -> None:
        if sess.ttl_ns:
            self.session_expires[sess.id] = now + expiry_delay(sess.ttl_ns, self.config.session_expiry,
                                                               self._rng)

    def session_renew(self, sid: str, now: float) -> Session | None:
        """Resets the TTL timer (not a Raft write: no index). None if unknown."""
        self.require_leader()
        sess = self.sessions.get(sid)
        if sess is not None:
            self._arm(sess, now)
        return sess

    def session_destroy(self, sid: str, now: float) -> None:
        self.require_leader()
        self._invalidate(sid, now)

    def _invalidate(self, sid: str, at: float) -> None:
        """deleteSessionTxn: drop the session, release/delete its keys, arm lock-delay."""
        sess = self.sessions.get(sid)
        if sess is None:
            return
        idx = self._next()
        del self.sessions[sid]
        self.session_expires.pop(sid, None)
        self.sessions_index = idx
        delay = min(sess.lock_delay_ns / SECOND, MAX_LOCK_DELAY)
        self.kv.release_session(idx, sid, sess.behavior == DELETE, at + delay if delay > 0 else None)

    def node_sessions(self, node: str) -> list[Session]:
        return [s for s in self.sessions.values() if s.node == node]

    # ---- agent checks & services --------------------------------------------------------

    def agent_check_register(self, check: Check, now: float) -> None:
        check = replace(check, node=self.node)
        self.agent.checks[check.check_id] = check
        self.agent.ttl_deadline.pop(check.check_id, None)
        if check.ttl_ns:
            self.agent.ttl_deadline[check.check_id] = now + check.ttl_ns / SECOND
        self._mark_critical(check, now)
        self._sync(now)

    def agent_check_deregister(self, check_id: str, now: float) -> bool:
        if self.agent.checks.pop(check_id, None) is None:
            return False
        self.agent.ttl_deadline.pop(check_id, None)
        self.agent.critical_since.pop(check_id, None)
        self._sync(now)
        return True

    def agent_check_update(self, check_id: str, status: str, output: str, now: float) -> None:
        """updateTTLCheck: only TTL checks; resets the TTL timer."""
        check = self.agent.checks.get(check_id)
        if check is None or not check.ttl_ns:
            raise ConsulError(f'CheckID "{check_id}" does not have associated TTL')
        self.agent.ttl_deadline[check_id] = now + check.ttl_ns / SECOND
        self._set_agent_status(check, status, output, now)

    def _set_agent_status(self, check: Check, status: str, output: str, at: float) -> None:
        if check.status != status or check.output != output:
            check = replace(check, status=status, output=output)
        self.agent.checks[check.check_id] = check
        self._mark_critical(check, at)
        self._sync(at)

    def _mark_critical(self, check: Check, at: float) -> None:
        if check.status == cat.CRITICAL:
            self.agent.critical_since.setdefault(check.check_id, at)
        else:
            self.agent.critical_since.pop(check.check_id, None)

    def agent_service_register(self, svc: Service, checks: list[Check], now: float) -> None:
        self.agent.services[svc.service_id] = replace(svc, node=self.node)
        for check in checks:
            self.agent_check_register(check, now)
        self._sync(now)

    def agent_service_deregister(self, service_id: str, now: float) -> bool:
        if self.agent.services.pop(service_id, None) is None:
            return False
        for cid in [c.check_id for c in self.agent.checks.values() if c.service_id == service_id]:
            self.agent.checks.pop(cid)
            self.agent.ttl_deadline.pop(cid, None)
            self.agent.critical_since.pop(cid, None)
        self._sync(now)
        return True

    def _sync(self, at: float) -> None:
        """Anti-entropy: make the catalog's view of this node match the agent (needs a leader).
        Each changed object is its own Raft write; sessions bound to a check that turned
        critical or vanished are invalidated right after, as Consul's state store does."""
        if not self.leader:
            return
        node = self.node
        for (n, sid) in [k for k in self.catalog.services if k[0] == node and k[1] != "consul"]:
            if sid not in self.agent.services and self.catalog.delete_service(self._peek(), n, sid):
                self._next()
        for svc in self.agent.services.values():
            if self.catalog.put_service(self._peek(), svc):
                self._next()
        doomed: list[str] = []
        for (n, cid) in [k for k in self.catalog.checks if k[0] == node and k[1] != cat.SERF_CHECK_ID]:
            if cid not in self.agent.checks and self.catalog.delete_check(self._peek(), n, cid):
                self._next()
                doomed.append(cid)
        for check in self.agent.checks.values():
            if self.catalog.put_check(self._peek(), check):
                self._next()
                if check.status == cat.CRITICAL:
                    doomed.append(check.check_id)
        for cid in doomed:
            for sid in [s.id for s in self.sessions.values() if s.bound_to(node, cid)]:
                self._invalidate(sid, at)

    def _peek(self) -> int:
        return self.index + 1

    # ---- timers -----------------------------------------------------------------------

    def _due_events(self) -> list[tuple[float, str, str]]:
        events: list[tuple[float, str, str]] = []
        if self.leader:
            events.extend((t, "session", sid) for sid, t in self.session_expires.items())
        events.extend((t, "ttl", cid) for cid, t in self.agent.ttl_deadline.items())
        for cid, since in self.agent.critical_since.items():
            check = self.agent.checks.get(cid)
            if check is not None and check.dcsa_ns and check.service_id in self.agent.services:
                events.append((since + check.dcsa_ns / SECOND, "reap", cid))
        return events

    def next_deadline(self) -> float | None:
        """Earliest time at which `advance` has something to do (None: nothing scheduled).
        Same times as `_due_events`, without building the list (asked after every request)."""
        best: float | None = None
        if self.leader and self.session_expires:
            best = min(self.session_expires.values())
        if self.agent.ttl_deadline:
            t = min(self.agent.ttl_deadline.values())
            if best is None or t < best:
                best = t
        for cid, since in self.agent.critical_since.items():
            check = self.agent.checks.get(cid)
            if check is not None and check.dcsa_ns and check.service_id in self.agent.services:
                t = since + check.dcsa_ns / SECOND
                if best is None or t < best:
                    best = t
        return best

    def advance(self, now: float) -> None:
        """Fires, in time order, every timer due at or before `now`. Idempotent."""
        while True:
            due = [e for e in self._due_events() if e[0] <= now]
            if not due:
                break
            at, kind, key = min(due)
            if kind == "session":
                self._invalidate(key, at)
            elif kind == "ttl":
                self.agent.ttl_deadline.pop(key, None)
                self._set_agent_status(self.agent.checks[key], cat.CRITICAL, "TTL expired", at)
            else:
                self.agent_service_deregister(self.agent.checks[key].service_id, at)
        self.kv.expire_lock_delays(now)

    # ---- invariants ---------------------------------------------------------------------

    def check_invariants(self) -> None:
        """Raises AssertionError if the state breaks a Consul invariant. Stateful across
        calls: also checks the index never went backwards and that a key's LockIndex
        (while the key lives) only drops when the entry was rewritten: Consul resets it to
        0 on a plain/CAS write, otherwise only acquisitions change it, and only upwards."""
        assert self.index > 0
        assert self.index >= self._index_seen, "index went backwards"
        self._index_seen = self.index
        for table in (self.kv.table_index, self.sessions_index, self.catalog.table_index):
            assert 0 <= table <= self.index
        seen: dict[str, tuple[int, int, int]] = {}
        for key, e in self.kv.entries.items():
            assert e.key == key
            assert 0 < e.create_index <= e.modify_index <= self.kv.table_index
            assert e.lock_index >= 0
            if e.session:
                assert e.session in self.sessions, f"{key} held by dead session {e.session}"
            prev = self._lock_seen.get(key)
            if prev is not None and prev[0] == e.create_index and e.lock_index < prev[1]:
                assert e.modify_index > prev[2], f"LockIndex of {key} decreased without a write"
            seen[key] = (e.create_index, e.lock_index, e.modify_index)
        self._lock_seen = seen
        for sid, s in self.sessions.items():
            assert s.id == sid and 0 < s.create_index <= self.sessions_index
            assert s.node in self.catalog.nodes
            assert (sid in self.session_expires) == bool(s.ttl_ns)
        assert set(self.session_expires) <= set(self.sessions)
