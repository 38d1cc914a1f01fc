"""Catch-up: what happens between CATCHING_UP and WRITABLE.

Sequence (each step starts when the previous one succeeded):

1. mint the fencing token: a local txn [check-session leader key with our session,
   cas epoch key at its last seen ModifyIndex (0 = absent)] whose value names the previous
   index (so it always differs: Consul skips a write equal to the stored entry, which would
   not bump the index); the epoch entry's new ModifyIndex is the token. It strictly
   increases per DC across leaders and fence cycles because Consul's Raft index does.
   A cas conflict re-reads the epoch key (`?consistent`) and retries; a check-session
   failure means leadership is lost;
2. copy every `catch_up.copy_prefixes` from a quorum member DC (`GET ?recurse&dc=X`,
   consistent) into the local KV with txns of [check-session, <= 63 sets]; the
   coordinator's own keys (`coordinator/<cluster>/...`) are never copied;
3. run the hook (exit 0 = caught up; non-zero, no start or timeout = failed), or wait
   for AdminAction.CAUGHT_UP when `wait_for_admin`, or finish at once.

Outcomes are left in `outcome` for the replica to consume: DONE, FAILED (the DC goes
back to FENCED and `can_begin` stays false for an exponential backoff) or
LEADERSHIP_LOST. `abort()` cancels the in-flight requests; a hook cannot be cancelled,
so a new catch-up does not begin while a previous hook may still run.
"""

from __future__ import annotations

import enum
import json
import math

from coordinator.consul import sansio as c
from coordinator.consul.errors import ConsulError, TxnRolledBack
from coordinator.consul.models import KvEntry
from coordinator.core.plumbing import Inflight, Keys, LocalHealth, Pending, Result, unwrap
from coordinator.core.protocol import Command, HookResult, RunHook
from coordinator.core.topology import CatchUp, Timers

MAX_MINT_CONFLICTS = 5
"""CAS conflicts on the epoch key tolerated within one catch-up before it fails."""
HOOK_GRACE = 1.0
"""Seconds past catchup_timeout after which a hook the shell never reported counts as timed out."""


class Outcome(enum.Enum):
    DONE = "done"
    FAILED = "failed"
    LEADERSHIP_LOST = "leadership-lost"


class CatchUpRunner:
    """One catch-up at a time; see the module docstring for the steps."""

    def __init__(
        self,
        *,
        keys: Keys,
        replica_id: str,
        config: CatchUp,
        timers: Timers,
        inflight: Inflight,
        health: LocalHealth,
    ) -> None:
        self.keys = keys
        self.replica_id = replica_id
        self.config = config
        self.timers = timers
        self.inflight = inflight
        self.health = health
        self.phase = "idle"
        self.token: int | None = None
        self.epoch_index: int | None = None
        """ModifyIndex of the epoch key as last seen; None = unknown (read it first)."""
        self.outcome: Outcome | None = None
        self.detail = ""
        self.source: str | None = None
        self.failures = 0
        self.retry_at = 0.0
        self.hook_tag: str | None = None
        self.hook_deadline = math.inf
        self._session = ""
        self._sources: list[str] = []
        self._fenced_seconds = 0.0
        self._fenced_known = False
        self._copied: dict[str, KvEntry] = {}
        self._to_write: list[KvEntry] = []
        self._conflicts = 0
        self._hooks = 0

    # --- control ----------------------------------------------------------------------

    def can_begin(self, now: float) -> bool:
        return self.phase in ("idle", "done", "failed") and self.hook_tag is None and now >= self.retry_at

    def begin(
        self, now: float, session_id: str, sources: list[str], fenced_seconds: float, fenced_known: bool
    ) -> list[Command]:
        """Start a catch-up. `sources`: quorum member DCs to copy from, best first."""
        self.token = None
        self.outcome = None
        self.detail = ""
        self._session = session_id
        self._sources = sources
        self._fenced_seconds = fenced_seconds
        self._fenced_known = fenced_known
        self._conflicts = 0
        return self._mint(now)

    def abort(self) -> list[Command]:
        """Stop the current catch-up (no outcome). A running hook's result will be ignored."""
        if self.phase not in ("idle", "done", "failed"):
            self.phase = "idle"
        self.token = None
        return self.inflight.cancel(["catchup"])

    def admin_caught_up(self) -> bool:
        """AdminAction.CAUGHT_UP: completes a catch-up waiting for it; False if none was."""
        if self.phase != "admin":
            return False
        self._finish(Outcome.DONE, "admin confirmed")
        return True

    def take_outcome(self) -> Outcome | None:
        out, self.outcome = self.outcome, None
        return out

    def _finish(self, outcome: Outcome, detail: str, now: float = 0.0) -> None:
        self.outcome = outcome
        self.detail = detail
        if outcome is Outcome.DONE:
            self.phase = "done"
            self.failures = 0
        else:
            self.phase = "failed"
            self.token = None
            self.failures += 1
            base = self.timers.probe_interval
            self.retry_at = now + min(self.timers.retry_backoff_max, base * 2 ** min(self.failures - 1, 30))

    # --- timers -----------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        return self.hook_deadline if self.hook_tag is not None else None

    def on_timer(self, now: float) -> list[Command]:
        if self.hook_tag is not None and now >= self.hook_deadline:
            return self.on_hook_done(self.hook_tag, HookResult(None, "no result from the shell"), now)
        return []

    # --- steps ------------------------------------------------------------------------

    def _local_timeout(self) -> float:
        return max(self.timers.lease, 1.0)

    def _mint(self, now: float) -> list[Command]:
        if self.epoch_index is None:
            self.phase = "epoch_read"
            req = c.kv_get(self.keys.epoch, consistency="consistent", timeout=self._local_timeout())
            return [self.inflight.send("catchup.epoch_read", req, now)]
        self.phase = "mint"
        value = json.dumps(
            {
                "leader": self.replica_id,
                "dc": self.keys.dc,
                "session": self._session,
                "prev": self.epoch_index,
            },
            separators=(",", ":"),
            sort_keys=True,
        ).encode()
        ops = [
            c.TxnOp.check_session(self.keys.leader, self._session),
            c.TxnOp.cas(self.keys.epoch, value, self.epoch_index),
        ]
        req = c.txn(ops, timeout=self._local_timeout())
        return [self.inflight.send("catchup.mint", req, now)]

    def handle(self, p: Pending, result: Result, now: float) -> list[Command]:
        """Consume the result of one of our requests (kind "catchup.*")."""
        try:
            if p.kind == "catchup.epoch_read":
                read = unwrap(result, c.parse_kv_get)
                self.health.success(p.kind)
                entry = read.entry
                self.epoch_index = entry.modify_index if entry is not None else 0
                return self._mint(now)
            if p.kind == "catchup.mint":
                return self._on_mint(result, now)
            if p.kind == "catchup.copy_read":
                return self._on_copy_read(p, result, now)
            if p.kind == "catchup.copy_write":
                return self._on_copy_write(result, now)
        except TxnRolledBack as exc:
            if any(op == 0 for op, _ in exc.errors):
                self._finish(Outcome.LEADERSHIP_LOST, "check-session failed: lock not ours", now)
                return self.inflight.cancel(["catchup"])
            if p.kind == "catchup.mint" and self._conflicts < MAX_MINT_CONFLICTS:
                self._conflicts += 1
                self.epoch_index = None
                return self._mint(now)
            self._finish(Outcome.FAILED, str(exc), now)
        except ConsulError as exc:
            if p.kind != "catchup.copy_read":
                self.health.failure(exc, p.kind)
            self._finish(Outcome.FAILED, f"{p.kind}: {exc}", now)
        return self.inflight.cancel(["catchup"])

    def _on_mint(self, result: Result, now: float) -> list[Command]:
        txn = unwrap(result, c.parse_txn)
        self.health.success("catchup.mint")
        idx = next((e.modify_index for e in txn.results if e.key == self.keys.epoch), None)
        if idx is None or idx <= (self.epoch_index or 0):
            # A token must exceed every earlier one; never hand out an index we already saw.
            self.epoch_index = None
            self._finish(Outcome.FAILED, f"mint txn returned no new epoch index ({idx})", now)
            return []
        self.token = idx
        self.epoch_index = idx
        return self._copy(now)

    def _copy(self, now: float) -> list[Command]:
        prefixes = self.config.copy_prefixes
        self.source = self._sources[(self.failures) % len(self._sources)] if self._sources else None
        if not prefixes or self.source is None:
            return self._after_copy(now)
        self.phase = "copy_read"
        self._copied = {}
        timeout = max(self.timers.probe_timeout, min(self.timers.catchup_timeout, 10.0))
        return [
            self.inflight.send(
                "catchup.copy_read",
                c.kv_get(prefix, dc=self.source, consistency="consistent", recurse=True, timeout=timeout),
                now,
                prefix,
            )
            for prefix in prefixes
        ]

    def _on_copy_read(self, p: Pending, result: Result, now: float) -> list[Command]:
        read = unwrap(result, c.parse_kv_get)
        own = f"coordinator/{self.keys.cluster}/"
        for entry in read.entries:
            if not entry.key.startswith(own):
                self._copied[entry.key] = entry
        if self.inflight.has("catchup.copy_read"):
            return []
        self._to_write = [self._copied[k] for k in sorted(self._copied)]
        return self._write_chunk(now)

    def _write_chunk(self, now: float) -> list[Command]:
        if not self._to_write:
            return self._after_copy(now)
        self.phase = "copy_write"
        chunk, self._to_write = self._to_write[: c.MAX_TXN_OPS - 1], self._to_write[c.MAX_TXN_OPS - 1 :]
        ops = [c.TxnOp.check_session(self.keys.leader, self._session)]
        ops += [c.TxnOp.set(e.key, e.value or b"", flags=e.flags or None) for e in chunk]
        return [self.inflight.send("catchup.copy_write", c.txn(ops, timeout=self._local_timeout()), now)]

    def _on_copy_write(self, result: Result, now: float) -> list[Command]:
        unwrap(result, c.parse_txn)
        self.health.success("catchup.copy_write")
        return self._write_chunk(now)

    def _after_copy(self, now: float) -> list[Command]:
        if self.config.hook:
            self.phase = "hook"
            self._hooks += 1
            self.hook_tag = f"catchup.hook#{self._hooks}"
            self.hook_deadline = now + self.timers.catchup_timeout + HOOK_GRACE
            env = {
                "COORDINATOR_DC": self.keys.dc,
                "COORDINATOR_CLUSTER": self.keys.cluster,
                "COORDINATOR_REPLICA": self.replica_id,
                "COORDINATOR_FENCED_SECONDS": f"{self._fenced_seconds:.3f}",
                "COORDINATOR_FENCED_KNOWN": "true" if self._fenced_known else "false",
                "COORDINATOR_TOKEN": str(self.token),
                "COORDINATOR_SOURCE_DC": self.source or "",
            }
            return [RunHook(self.hook_tag, tuple(self.config.hook), env, self.timers.catchup_timeout)]
        if self.config.wait_for_admin:
            self.phase = "admin"
            return []
        self._finish(Outcome.DONE, "prefixes copied", now)
        return []

    def on_hook_done(self, tag: str, result: HookResult, now: float) -> list[Command]:
        if tag != self.hook_tag:
            return []
        self.hook_tag = None
        self.hook_deadline = math.inf
        if self.phase != "hook":
            return []
        if result.exit_code == 0:
            self._finish(Outcome.DONE, "hook exited 0", now)
        elif result.exit_code is None:
            self._finish(Outcome.FAILED, f"hook timed out or did not start: {result.detail}", now)
        else:
            self._finish(Outcome.FAILED, f"hook exited {result.exit_code}: {result.detail}", now)
        return []
