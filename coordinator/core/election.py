"""Local leader election: one replica per DC holds `coordinator/<cluster>/dc/<dc>/leader`.

The lock life cycle (consul-semantics.md "Sessions", "KV"):

1. register an agent TTL check of our own (`check_ttl`), pass it at once and then every
   `check_interval`;
2. create a session (TTL `session_ttl`, LockDelay `lock_delay`, Behavior release) bound to
   THAT check only (`NodeChecks: [id]` and no `Checks` key: Consul's
   fixupEmptySessionChecks keeps its default serfHealth if only `Checks` is sent): a crashed replica stops
   passing, the check goes critical after check_ttl and the session dies, and a successor
   can take the lock after a further `lock_delay`;
3. `PUT ?acquire=` the leader key; `false` (held, or inside the lock-delay) is retried on
   a short timer while the key is free;
4. everybody watches the key with `?consistent` blocking reads; a watcher tries to acquire
   when the key's Session is empty (or is still its own after a step-down);
5. renew the session every session_ttl/3.

Step-down rules (kazoo: any doubt = we hold nothing): the leader stops leading the moment
a trusted watch shows another Session (or none), its renew answers 404, an acquire or a
check-session proves the session invalid, or no leadership proof arrived within `lease`.
A watch is trusted only if it was SENT after our acquire was ANSWERED: an older read may
show the key as it was before we took it.

Proofs: the acquire's send time, then every probe round's check-session txn send time
(`note_proof`). Leadership counts from a proof's SEND time, never its receive time.

Every LOCAL failure goes to the shared `LocalHealth` (which fences through the replica)
and is retried after its backoff. Shutdown: release the key (no lock-delay), destroy the
session, deregister the check, in that order, each step whatever the previous answered.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable

from coordinator.consul import sansio as c
from coordinator.consul.errors import ConsulError, InvalidSession, NotFound, RequestRejected
from coordinator.core.leader_key import leader_id_of, leader_value
from coordinator.core.plumbing import Inflight, Keys, LocalHealth, Pending, Result, unwrap
from coordinator.core.protocol import Command
from coordinator.core.topology import Timers

WATCH_WAIT = 5.0
"""Seconds a blocking watch of the leader key waits server-side."""


class Role(enum.Enum):
    CANDIDATE = "candidate"
    FOLLOWER = "follower"
    LEADER = "leader"
    STOPPED = "stopped"


class Election:
    """The leader lock state machine of one replica. Drive it like the core itself:
    `on_timer(now)`, `next_deadline()`, `handle(pending, result, now)`.
    """

    def __init__(
        self,
        *,
        keys: Keys,
        replica_id: str,
        timers: Timers,
        inflight: Inflight,
        health: LocalHealth,
        api_address: str | None = None,
    ) -> None:
        self.keys = keys
        self.replica_id = replica_id
        self.timers = timers
        self.inflight = inflight
        self.health = health
        self.value = leader_value(replica_id, api_address)
        self.check_id = f"coordinator-{keys.cluster}-{keys.dc}-{replica_id}"
        self.role = Role.CANDIDATE
        self.session_id: str | None = None
        self.check_registered = False
        self.check_passing = False
        self.holder: str | None = None
        """Session holding the leader key as last seen (None = free or unknown)."""
        self.leader_id: str | None = None
        self.leader_since: float | None = None
        """Receive time of the acquire that made us leader."""
        self.leader_seq = 0
        """Inflight send counter when we became leader: watches sent before it are untrusted."""
        self.last_proof: float | None = None
        self.watch_index = 0
        self.stopping = False
        self.finished = False
        self.step_downs = 0
        self._want_acquire = True
        self._next_check = 0.0
        self._next_session = 0.0
        self._next_renew = math.inf
        self._next_acquire = 0.0
        self._next_watch = 0.0
        self._shutdown_steps: list[str] = []

    # --- scheduling -------------------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        return self.role is Role.LEADER

    def _due(self) -> list[tuple[float, Callable[[float], Command]]]:
        """Every action that may run, with the time it becomes due (shared by on_timer and next_deadline)."""
        if self.stopping:
            return []
        out: list[tuple[float, Callable[[float], Command]]] = []
        busy = self.inflight.has
        if not busy("lock.check_register") and not busy("lock.check_pass"):
            out.append((self._next_check, self._send_check))
        if self.session_id is None and self.check_passing and not busy("lock.session_create"):
            out.append((self._next_session, self._send_session_create))
        if self.session_id is not None and not busy("lock.renew"):
            out.append((self._next_renew, self._send_renew))
        if not busy("lock.watch"):
            out.append((self._next_watch, self._send_watch))
        if (
            self.session_id is not None
            and self.role is not Role.LEADER
            and self._want_acquire
            and not busy("lock.acquire")
        ):
            out.append((self._next_acquire, self._send_acquire))
        return out

    def next_deadline(self) -> float | None:
        """The earliest finite due time of `_due()` or of the lease on our last proof.

        Hot path (once per core step): mirrors `_due`'s conditions without building the
        action list; keep both in step.
        """
        if self.stopping:
            times: list[float] = []
        else:
            kinds = self.inflight.has
            session = self.session_id
            times = []
            if not kinds("lock.check_register") and not kinds("lock.check_pass"):
                times.append(self._next_check)
            if session is None:
                if self.check_passing and not kinds("lock.session_create"):
                    times.append(self._next_session)
            elif not kinds("lock.renew"):
                times.append(self._next_renew)
            if not kinds("lock.watch"):
                times.append(self._next_watch)
            if (
                session is not None
                and self.role is not Role.LEADER
                and self._want_acquire
                and not kinds("lock.acquire")
            ):
                times.append(self._next_acquire)
        if self.role is Role.LEADER and self.last_proof is not None:
            times.append(self.last_proof + self.timers.lease)
        best: float | None = None
        for t in times:
            if math.isfinite(t) and (best is None or t < best):
                best = t
        return best

    def on_timer(self, now: float) -> list[Command]:
        proof = self.last_proof
        if self.role is Role.LEADER and proof is not None and now >= proof + self.timers.lease:
            self.step_down(now)
        return [send(now) for due, send in self._due() if due <= now]

    # --- senders ----------------------------------------------------------------------

    def _local_timeout(self) -> float:
        return max(self.timers.lease, 1.0)

    def _send_check(self, now: float) -> Command:
        if not self.check_registered:
            req = c.agent_check_register(
                self.check_id,
                f"coordinator replica {self.replica_id}",
                self.timers.check_ttl,
                timeout=self._local_timeout(),
            )
            return self.inflight.send("lock.check_register", req, now)
        req = c.agent_check_pass(self.check_id, timeout=self._local_timeout())
        return self.inflight.send("lock.check_pass", req, now)

    def _send_session_create(self, now: float) -> Command:
        req = c.session_create(
            name=f"coordinator/{self.keys.cluster}/{self.keys.dc}/{self.replica_id}",
            ttl=self.timers.session_ttl,
            lock_delay=self.timers.lock_delay,
            behavior="release",
            node_checks=[self.check_id],  # NodeChecks only: a Checks key alone keeps serfHealth
            timeout=self._local_timeout(),
        )
        return self.inflight.send("lock.session_create", req, now)

    def _send_renew(self, now: float) -> Command:
        assert self.session_id is not None
        req = c.session_renew(self.session_id, timeout=self._local_timeout())
        return self.inflight.send("lock.renew", req, now, self.session_id)

    def _send_watch(self, now: float) -> Command:
        if self.watch_index == 0:
            req = c.kv_get(self.keys.leader, consistency="consistent", timeout=self._local_timeout())
        else:
            req = c.kv_get(
                self.keys.leader, consistency="consistent", index=self.watch_index, wait=WATCH_WAIT
            )
        return self.inflight.send("lock.watch", req, now)

    def _send_acquire(self, now: float) -> Command:
        assert self.session_id is not None
        req = c.kv_put(self.keys.leader, self.value, acquire=self.session_id, timeout=self._local_timeout())
        return self.inflight.send("lock.acquire", req, now, self.session_id)

    # --- results ----------------------------------------------------------------------

    def handle(self, p: Pending, result: Result, now: float) -> list[Command]:
        """Consume the result of one of our requests (kind "lock.*")."""
        if p.kind.startswith("lock.shutdown"):
            return self._shutdown_next(now)
        handler = {
            "lock.check_register": self._on_check_register,
            "lock.check_pass": self._on_check_pass,
            "lock.session_create": self._on_session_create,
            "lock.renew": self._on_renew,
            "lock.watch": self._on_watch,
            "lock.acquire": self._on_acquire,
        }[p.kind]
        try:
            handler(p, result, now)
        except ConsulError as exc:
            self._on_error(p, exc, now)
        return self.on_timer(now)

    def _on_check_register(self, p: Pending, result: Result, now: float) -> None:
        unwrap(result, c.parse_agent_ok)
        self.health.success(p.kind)
        self.check_registered = True
        self._next_check = now

    def _on_check_pass(self, p: Pending, result: Result, now: float) -> None:
        unwrap(result, c.parse_agent_ok)
        self.health.success(p.kind)
        self.check_passing = True
        self._next_check = p.sent_at + self.timers.check_interval

    def _on_session_create(self, p: Pending, result: Result, now: float) -> None:
        self.session_id = unwrap(result, c.parse_session_create)
        self.health.success(p.kind)
        self._next_renew = p.sent_at + self.timers.session_ttl / 3
        self._want_acquire = True
        self._next_acquire = now

    def _on_renew(self, p: Pending, result: Result, now: float) -> None:
        if p.data != self.session_id:
            return
        unwrap(result, c.parse_session_renew)
        self.health.success(p.kind)
        self._next_renew = p.sent_at + self.timers.session_ttl / 3

    def _on_acquire(self, p: Pending, result: Result, now: float) -> None:
        acquired = unwrap(result, c.parse_kv_put)
        self.health.success(p.kind)
        if p.data != self.session_id:
            return
        if acquired:
            self.role = Role.LEADER
            self.holder = self.session_id
            self.leader_id = self.replica_id
            self.leader_since = now
            self.leader_seq = self.inflight.sent
            self.last_proof = p.sent_at
            self._want_acquire = False
        else:
            self._next_acquire = now + self.timers.probe_interval

    def _on_watch(self, p: Pending, result: Result, now: float) -> None:
        read = unwrap(result, c.parse_kv_get)
        self.health.success(p.kind)
        self.watch_index = c.next_blocking_index(self.watch_index, read.meta.index)
        self._next_watch = now
        entry = read.entry
        holder = entry.session if entry is not None and entry.session else None
        if self.role is Role.LEADER:
            trusted = self.leader_since is not None and p.seq > self.leader_seq
            if not trusted or holder == self.session_id:
                return
            self.step_down(now)
        self.holder = holder
        self.leader_id = leader_id_of(entry.value) if holder is not None and entry is not None else None
        if holder is None or holder == self.session_id:
            self.role = Role.CANDIDATE
            if not self._want_acquire:
                self._want_acquire = True
                self._next_acquire = now
        else:
            self.role = Role.FOLLOWER
            self._want_acquire = False

    def _on_error(self, p: Pending, exc: ConsulError, now: float) -> None:
        if isinstance(exc, InvalidSession) and p.kind in ("lock.renew", "lock.acquire"):
            if p.data == self.session_id:
                self._session_lost(now)
            return
        if p.kind == "lock.check_pass" and isinstance(exc, NotFound | RequestRejected):
            self.check_registered = False
            self.check_passing = False
        if p.kind == "lock.session_create" and isinstance(exc, RequestRejected):
            self.check_registered = False
            self.check_passing = False
        delay = self.health.failure(exc, p.kind)
        if p.kind in ("lock.check_register", "lock.check_pass"):
            self._next_check = now + min(delay, self.timers.check_interval)
        elif p.kind == "lock.session_create":
            self._next_session = now + delay
        elif p.kind == "lock.renew":
            self._next_renew = now + min(delay, self.timers.session_ttl / 3)
        elif p.kind == "lock.acquire":
            self._next_acquire = now + delay
        elif p.kind == "lock.watch":
            self._next_watch = now + delay
            self.watch_index = 0

    # --- leadership -------------------------------------------------------------------

    def note_proof(self, sent_at: float) -> None:
        """A check-session on the leader key with our session succeeded; it was sent at `sent_at`."""
        if self.role is Role.LEADER and (self.last_proof is None or sent_at > self.last_proof):
            self.last_proof = sent_at

    def step_down(self, now: float) -> None:
        """Stop leading now. The lock may still be ours: the watch decides whether to re-acquire."""
        if self.role is not Role.LEADER:
            return
        self.step_downs += 1
        self.role = Role.CANDIDATE
        self.leader_since = None
        self.last_proof = None
        self.leader_id = None
        self._want_acquire = False
        self._next_watch = min(self._next_watch, now)

    def lost_lock(self, now: float) -> None:
        """A check-session failed: the key is not held by our session."""
        self.step_down(now)
        self.holder = None

    def _session_lost(self, now: float) -> None:
        self.step_down(now)
        self.session_id = None
        self._next_renew = math.inf
        self._next_session = now

    # --- shutdown ---------------------------------------------------------------------

    def shutdown(self, now: float) -> list[Command]:
        """Release the key, destroy the session, deregister the check (callers cancel in-flight first)."""
        self.step_down(now)
        self.role = Role.STOPPED
        self.stopping = True
        self._shutdown_steps = []
        if self.session_id is not None:
            self._shutdown_steps += ["release", "destroy"]
        self._shutdown_steps.append("deregister")
        return self._shutdown_next(now)

    def _shutdown_next(self, now: float) -> list[Command]:
        if not self._shutdown_steps:
            self.finished = True
            return []
        step = self._shutdown_steps.pop(0)
        t = self._local_timeout()
        if step == "release":
            assert self.session_id is not None
            req = c.kv_put(self.keys.leader, self.value, release=self.session_id, timeout=t)
        elif step == "destroy":
            assert self.session_id is not None
            req = c.session_destroy(self.session_id, timeout=t)
        else:
            req = c.agent_check_deregister(self.check_id, timeout=t)
        return [self.inflight.send(f"lock.shutdown_{step}", req, now)]
