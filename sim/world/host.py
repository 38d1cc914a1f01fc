"""The shell around one real `ReplicaCore` inside the simulated world (contract:
coordinator.core.protocol), playing the part the asyncio daemon plays in production.

Invariants:
- the core only ever sees its LOCAL clock: ``local = offset + rate * virtual``; a rate
  change keeps the local clock continuous, so it never goes backwards;
- every SendRequest gets exactly one result (a Response, or ConsulTimeout once
  ``request.timeout`` has passed on the local clock), unless cancelled; the first of the
  two to arrive wins and the other is discarded;
- a PAUSED replica receives nothing: results, timers and hook completions queue in
  arrival order and are delivered on resume with the clock jumped;
- a CRASHED replica loses its memory: the core object is dropped, every in-flight
  exchange is abandoned (its connections close, so blocked queries end), and a restart
  builds a fresh core that starts from scratch.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from coordinator.consul.errors import ConsulTimeout
from coordinator.consul.sansio import Request, Response
from coordinator.core.protocol import (
    AdminAction,
    CancelRequest,
    Command,
    HookResult,
    MayWriteAnswer,
    RunHook,
    SendRequest,
)
from coordinator.core.replica import ReplicaCore
from coordinator.core.topology import Topology
from sim.world.clock import EventQueue, Timer
from sim.world.fabric import Call, Fabric

if TYPE_CHECKING:
    from sim.world.world import World

DEFAULT_TIMEOUT = 10.0
"""The Consul client's default timeout (coordinator.consul.client.DEFAULT_TIMEOUT)."""

TIMER_EPSILON = 1e-6
"""Timers fire this much (virtual seconds) after the exact deadline, beating float rounding."""

Step = Callable[[ReplicaCore, float], list[Command]]


class ReplicaHost:
    RUNNING, PAUSED, DOWN = "running", "paused", "down"

    def __init__(
        self,
        world: World,
        topology: Topology,
        dc: str,
        replica_id: str,
        rate: float,
        offset: float,
    ) -> None:
        self.world = world
        self.queue: EventQueue = world.queue
        self.fabric: Fabric = world.fabric
        self.rng: random.Random = world.rng
        self.topology = topology
        self.dc = dc
        self.replica_id = replica_id
        self.rate = rate
        self.offset = offset
        self.mode = self.DOWN
        self.core: ReplicaCore | None = None
        self._inflight: dict[str, tuple[Call, Timer]] = {}
        self._hooks: dict[str, Timer] = {}
        self._pending: list[Step] = []
        self._timer: Timer | None = None
        self._timer_at: float | None = None
        self.last_answer_index = -1
        self.last_answer: MayWriteAnswer | None = None
        self.restarts = 0

    # -- clock -----------------------------------------------------------------------------

    def local(self, t: float | None = None) -> float:
        return self.offset + self.rate * (self.queue.now if t is None else t)

    def virtual(self, local: float) -> float:
        return (local - self.offset) / self.rate

    def set_rate(self, rate: float) -> None:
        now_local = self.local()
        self.rate = rate
        self.offset = now_local - rate * self.queue.now
        self._rearm()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self.core = ReplicaCore(self.topology, self.dc, self.replica_id)
        self.mode = self.RUNNING
        self.last_answer_index = -1
        self._invoke(lambda core, now: core.start(now))

    def crash(self) -> None:
        if self.mode == self.DOWN:
            return
        self.mode = self.DOWN
        self.core = None
        for call, timer in self._inflight.values():
            call.cancel()
            timer.cancel()
        self._inflight.clear()
        for timer in self._hooks.values():
            timer.cancel()
        self._hooks.clear()
        self._pending.clear()
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = None, None
        self.world.observe(self)

    def restart(self) -> None:
        if self.mode == self.DOWN:
            self.restarts += 1
            self.start()

    def pause(self) -> None:
        if self.mode == self.RUNNING:
            self.mode = self.PAUSED
            self.world.observe(self)

    def resume(self) -> None:
        if self.mode != self.PAUSED:
            return
        self.mode = self.RUNNING
        pending, self._pending = self._pending, []
        for step in pending:
            self._invoke(step)
        self._on_timer()
        self.world.observe(self)

    def admin(self, action: AdminAction) -> None:
        """An admin call (`POST /v1/fence` ...) on this replica: queued while paused, lost
        while down, like an HTTP call to a stopped or dead process."""
        self._invoke(lambda core, now: core.on_admin(action, now))

    # -- driving the core ------------------------------------------------------------------

    def _invoke(self, step: Step) -> None:
        """Run `step` on the core now (queued while PAUSED, dropped while DOWN), then
        `_stepped`. `_on_timer` and `_result` inline this for their own step."""
        if self.mode == self.DOWN or self.core is None:
            return
        if self.mode == self.PAUSED:
            self._pending.append(step)
            return
        self._stepped(step(self.core, self.local()))

    def _stepped(self, commands: list[Command]) -> None:
        """After a core step: execute its commands, re-arm the timer, observe the answer."""
        for command in commands:
            self._execute(command)
        self._rearm()
        self.world.observe(self)

    def _rearm(self) -> None:
        core = self.core
        if core is None or self.mode == self.DOWN:
            return
        deadline = core.next_deadline()
        at = None
        if deadline is not None:
            # Round up so that the local clock has really reached the deadline when it fires;
            # a deadline still in the past right after a call is retried 1 us later, not spun on.
            at = max(self.virtual(deadline) + TIMER_EPSILON, self.queue.now + TIMER_EPSILON)
        if at == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = at
        self._timer = None if at is None else self.queue.schedule(at, self._on_timer)

    def _on_timer(self) -> None:
        self._timer, self._timer_at = None, None
        core = self.core
        if self.mode != self.RUNNING or core is None:  # `_invoke` of core.on_timer, inlined
            return
        self._stepped(core.on_timer(self.local()))

    def _execute(self, command: Command) -> None:
        if isinstance(command, SendRequest):
            self._send(command.tag, command.request)
        elif isinstance(command, CancelRequest):
            entry = self._inflight.pop(command.tag, None)
            if entry is not None:
                entry[0].cancel()
                entry[1].cancel()
        elif isinstance(command, RunHook):
            self._run_hook(command)

    def _send(self, tag: str, request: Request) -> None:
        timeout = DEFAULT_TIMEOUT if request.timeout is None else request.timeout
        call = self.fabric.call(self.dc, request, partial(self._result, tag))
        timer = self.queue.after(timeout / self.rate, self._timed_out, tag, timeout, request)
        self._inflight[tag] = (call, timer)

    def _timed_out(self, tag: str, timeout: float, request: Request) -> None:
        error = ConsulTimeout(f"{request.method} {request.path}: no answer within {timeout:g}s")
        self._result(tag, error)

    def _result(self, tag: str, result: Response | ConsulTimeout) -> None:
        entry = self._inflight.pop(tag, None)
        if entry is None:
            return
        entry[0].cancel()
        entry[1].cancel()
        core = self.core
        if self.mode == self.RUNNING and core is not None:  # `_invoke`, inlined
            self._stepped(core.on_response(tag, result, self.local()))
        else:
            self._invoke(lambda core, now: core.on_response(tag, result, now))

    def _run_hook(self, hook: RunHook) -> None:
        mode = self.world.hook_failure.get(self.dc)
        low, high = self.world.hook_duration
        took = low + (high - low) * self.rng.random()
        if mode == "hang" or took >= hook.timeout:
            result, after = HookResult(None, "timed out"), hook.timeout
        elif mode == "fail":
            result, after = HookResult(1, "simulated hook failure"), took
        else:
            result, after = HookResult(0, ""), took
        old = self._hooks.pop(hook.tag, None)
        if old is not None:
            old.cancel()
        self._hooks[hook.tag] = self.queue.after(after / self.rate, self._hook_done, hook.tag, result)

    def _hook_done(self, tag: str, result: HookResult) -> None:
        if self._hooks.pop(tag, None) is not None:
            self._invoke(lambda core, now: core.on_hook_done(tag, result, now))

    # -- what the application sees ---------------------------------------------------------

    def answer(self) -> MayWriteAnswer | None:
        """The current may-write answer; None when the replica cannot answer (down or paused)."""
        if self.mode != self.RUNNING or self.core is None:
            return None
        return self.core.may_write(self.local())
