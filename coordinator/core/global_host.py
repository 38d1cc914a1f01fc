"""`GlobalLocks`: every configured global lock of one replica, behind one small facade.

The DC leader's `ReplicaCore` owns one. Contract (all pure, `now` passed in):

* `begin(now, holder_id)` when DC leadership starts, `stop(now)` when it ends;
* `set_dc(now, valid_until)` after every step: until when this DC may write (None: not);
* `on_timer(now)` whenever `now >= next_deadline()`; results of requests whose kind starts
  with "global." go to `handle`;
* or, simplest, call `drive(now, identity, dc_valid_until)` after every step: it does
  begin/stop on identity changes, then set_dc and on_timer;
* `answer(name, now)` is what `GET /v1/locks/<name>` shows; `index` moves whenever any
  lock's (held, term) changes, `lock_index(name)` whenever that lock's does (reading it
  records nothing, unlike `answer`);
* `release(name, now, hold_off)` is a graceful hand-over of one lock; `shutdown(now)`
  releases every lock for a host that stops for good, after which `releasing` stays true
  until every release write (and its one retry) came back. A lock defers its release
  writes until every "yes" it handed out has run out (`yes_over_at`: the high-water mark
  of `answer` plus a drift pad): a stopping host keeps calling `on_timer` at
  `next_deadline()` to send them, and waits at most until
  ``max(now, yes_over_at) + release_budget()``.
"""

from __future__ import annotations

import math

from coordinator.core.globallock import GlobalAnswer, GlobalLock, GlobalRole
from coordinator.core.plumbing import Inflight, Pending, Result
from coordinator.core.protocol import Command
from coordinator.core.topology import Topology


class GlobalLocks:
    def __init__(self, topology: Topology, dc: str, inflight: Inflight) -> None:
        self.locks: dict[str, GlobalLock] = {
            spec.name: GlobalLock(spec=spec, topology=topology, dc=dc, inflight=inflight)
            for spec in topology.global_locks
        }

        self.identity: str | None = None

    def drive(self, now: float, identity: str | None, dc_valid_until: float | None) -> list[Command]:
        """One step: `identity` is "<dc>/<replica>/<session>" while we lead our DC, else None;
        `dc_valid_until` is when our DC's may-write "yes" ends (None: it says no now)."""
        if not self.locks:  # nothing to drive (most topologies): only track the identity
            self.identity = identity
            return []
        cmds: list[Command] = []
        if identity != self.identity:
            cmds += self.stop(now) if identity is None else self.begin(now, identity)
            self.identity = identity
        if identity is not None:
            cmds += self.set_dc(now, dc_valid_until)
            cmds += self.on_timer(now)
        return cmds

    @property
    def index(self) -> int:
        return sum(lock.index for lock in self.locks.values())

    def begin(self, now: float, holder_id: str) -> list[Command]:
        return [cmd for lock in self.locks.values() for cmd in lock.begin(now, holder_id)]

    def stop(self, now: float) -> list[Command]:
        return [cmd for lock in self.locks.values() for cmd in lock.stop(now)]

    def set_dc(self, now: float, valid_until: float | None) -> list[Command]:
        return [cmd for lock in self.locks.values() for cmd in lock.set_dc(now, valid_until)]

    def on_timer(self, now: float) -> list[Command]:
        out: list[Command] = []
        for lock in self.locks.values():
            due = lock.next_deadline()
            if due is not None and now >= due:
                out += lock.on_timer(now)
        return out

    def next_deadline(self) -> float | None:
        """The earliest finite deadline of any lock (None: none). Asked after every step."""
        best: float | None = None
        for lock in self.locks.values():
            t = lock.next_deadline()
            if t is not None and math.isfinite(t) and (best is None or t < best):
                best = t
        return best

    def handle(self, pending: Pending, result: Result, now: float) -> list[Command]:
        name = pending.kind[len("global.") : pending.kind.rfind(".")]
        lock = self.locks.get(name)
        return lock.handle(pending, result, now) if lock is not None else []

    def answer(self, name: str, now: float) -> GlobalAnswer | None:
        lock = self.locks.get(name)
        return lock.answer(now) if lock is not None else None

    def release(self, name: str, now: float, hold_off: float = 0.0) -> list[Command]:
        lock = self.locks.get(name)
        return lock.release(now, hold_off) if lock is not None else []

    def lock_index(self, name: str) -> int | None:
        lock = self.locks.get(name)
        return lock.index if lock is not None else None

    def role(self, name: str) -> GlobalRole | None:
        lock = self.locks.get(name)
        return lock.role if lock is not None else None

    def shutdown(self, now: float) -> list[Command]:
        """Release every lock and stop contending for good (no `drive` afterwards)."""
        self.identity = None
        return [cmd for lock in self.locks.values() for cmd in lock.shutdown(now)]

    @property
    def releasing(self) -> bool:
        """Some release write is deferred or in flight."""
        return any(lock.releasing for lock in self.locks.values())

    @property
    def yes_over_at(self) -> float:
        """When no client may still act on any lock's "yes" (-inf: none was handed out)."""
        return max((lock.yes_over_at for lock in self.locks.values()), default=-math.inf)

    def release_budget(self) -> float:
        """How long a stopping host waits for the release writes once they are sent
        (after `yes_over_at`): write, re-read, write."""
        return max((3 * lock.spec.request_timeout for lock in self.locks.values()), default=0.0)

    def cancel_release(self, now: float) -> list[Command]:
        """Abandon release writes still in flight (the host's wait for them is over)."""
        return self.stop(now) if self.releasing else []
