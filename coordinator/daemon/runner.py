"""The asyncio shell around one sans-IO `ReplicaCore` (contract: coordinator.core.protocol).

The runner only EXECUTES what the core decides and reports results back; it holds no
decision logic. Invariants:

* every core call goes through `Runner._dispatch`, which runs the returned commands in
  order, wakes the timer loop (the deadline may have moved) and, when ``answer_index``
  moved, wakes the API long-pollers and the answer listeners; when the core's optional
  ``lock_index`` (global locks, ReplicaCore.lock_index) moved, it wakes the lock waiters
  (`wait_for_lock_change`): lock long-polls wake on the change itself, never by polling;
* ``now`` handed to the core is always ``clock()`` (``time.monotonic`` by default) read
  at the moment of the call;
* the result of a cancelled request or hook is never delivered; every other request is
  delivered exactly once, as a ``Response`` or a ``ConsulUnavailable`` (timeouts become
  ``ConsulTimeout``, anything unexpected from the client becomes ``ConsulUnreachable``);
* nothing raised by the Consul client, a hook or a listener stops the runner.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from coordinator.consul.errors import ConsulTimeout, ConsulUnavailable, ConsulUnreachable
from coordinator.consul.sansio import Request, Response
from coordinator.core.protocol import (
    AdminAction,
    CancelRequest,
    Command,
    HookResult,
    MayWriteAnswer,
    RunHook,
    SendRequest,
    StatusSnapshot,
)
from coordinator.daemon.hooks import run_hook

log = logging.getLogger("coordinator.daemon.runner")


class CoreLike(Protocol):
    """The part of `ReplicaCore` the shell drives (see coordinator.core.protocol)."""

    @property
    def answer_index(self) -> int: ...

    @property
    def finished(self) -> bool: ...

    def start(self, now: float) -> list[Command]: ...

    def on_timer(self, now: float) -> list[Command]: ...

    def next_deadline(self) -> float | None: ...

    def on_response(self, tag: str, result: Response | ConsulUnavailable, now: float) -> list[Command]: ...

    def on_hook_done(self, tag: str, result: HookResult, now: float) -> list[Command]: ...

    def on_admin(self, action: AdminAction, now: float) -> list[Command]: ...

    def may_write(self, now: float) -> MayWriteAnswer: ...

    def status(self, now: float) -> StatusSnapshot: ...


class Sender(Protocol):
    """What the runner needs from the Consul client (coordinator.consul.client.AsyncConsul)."""

    async def send(self, req: Request) -> Response: ...

    async def aclose(self) -> None: ...


HookRunner = Callable[[tuple[str, ...], Mapping[str, str], float], Awaitable[HookResult]]

_MIN_TIMER_STEP = 0.001

MIN_SHUTDOWN_GRACE = 5.0
"""The least a graceful stop waits for the core (`shutdown_grace`)."""
SHUTDOWN_SLACK = 1.0
"""Added to the core's own bound (event-loop latency, the last response's delivery)."""


def shutdown_grace(core: object) -> float:
    """How long a graceful stop waits for `core` to finish: its ``shutdown_budget()`` (the
    wait for the last "yes" to run out, then the release writes: ReplicaCore) plus
    `SHUTDOWN_SLACK`, and never less than `MIN_SHUTDOWN_GRACE`."""
    budget = getattr(core, "shutdown_budget", None)
    value = budget() if callable(budget) else 0.0
    if not isinstance(value, int | float) or not math.isfinite(value):
        value = 0.0
    return max(MIN_SHUTDOWN_GRACE, float(value) + SHUTDOWN_SLACK)

SEND_TIMEOUT_SLACK = 1.0
"""Seconds past ``Request.timeout`` before the runner gives up on the client itself."""

OUTCOMES = ("2xx", "3xx", "4xx", "5xx", "timeout", "unreachable", "error")
"""Label values of consul_requests_total{outcome}."""


def _outcome(result: Response | ConsulUnavailable) -> str:
    if isinstance(result, Response):
        return f"{min(max(result.status // 100, 2), 5)}xx"
    if isinstance(result, ConsulTimeout):
        return "timeout"
    if isinstance(result, ConsulUnreachable):
        return "unreachable"
    return "error"


class Runner:
    """Drives one core: requests, hooks, timers, admin actions, long-poll notification."""

    def __init__(
        self,
        core: CoreLike,
        consul: Sender,
        *,
        clock: Callable[[], float] = time.monotonic,
        hook_runner: HookRunner = run_hook,
    ) -> None:
        self.core = core
        self.consul = consul
        self.clock = clock
        self._hook_runner = hook_runner
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._answer_changed = asyncio.Event()
        self._last_index = core.answer_index
        self._timer_task: asyncio.Task[None] | None = None
        self._listeners: list[Callable[[], None]] = []
        self._locks_changed = asyncio.Event()
        self._last_lock_index = self._lock_index()
        self.lock_wakeups = 0
        """How often a lock waiter woke up (each wake re-checks its condition once)."""
        self.consul_outcomes: dict[str, int] = dict.fromkeys(OUTCOMES, 0)
        """Counters for consul_requests_total{outcome}; read by the metrics collector."""

    # -- public API -------------------------------------------------------------------

    def add_answer_listener(self, listener: Callable[[], None]) -> None:
        """Call `listener()` (synchronously) after every move of ``answer_index``."""
        self._listeners.append(listener)

    def start(self) -> None:
        """Start the core and the timer loop. Call once, inside the running event loop."""
        self._dispatch(self.core.start, self.clock())
        self._timer_task = asyncio.create_task(self._timer_loop(), name="coordinator-timers")

    def may_write(self) -> MayWriteAnswer:
        return self.core.may_write(self.clock())

    def status(self) -> StatusSnapshot:
        return self.core.status(self.clock())

    def admin(self, action: AdminAction) -> None:
        self._dispatch(self.core.on_admin, action, self.clock())

    async def wait_for_change(self, index: int, timeout: float) -> None:
        """Return once ``answer_index > index`` or after `timeout` seconds (never raises).

        An `index` ahead of the core's (the client saw an earlier run of the daemon) does
        not block: the caller answers at once and the client resumes from the new index.
        """
        if index > self.core.answer_index:
            return
        deadline = self.clock() + timeout
        while self.core.answer_index <= index:
            remaining = deadline - self.clock()
            if remaining <= 0:
                return
            event = self._answer_changed
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):  # no extra Task per parked request
                    await event.wait()

    def run_core(self, method: Callable[..., list[Command]], *args: Any) -> None:
        """Call a core entry point outside CoreLike (e.g. ReplicaCore.release_global) as
        ``method(*args, now)`` and execute its commands like every other core call."""
        self._dispatch(method, *args, self.clock())

    async def wait_for_lock_change(self, moved: Callable[[], bool], timeout: float) -> None:
        """Return once ``moved()`` is true or after `timeout` seconds (never raises).

        ``moved`` is evaluated now and then only after a core step moved ``lock_index``:
        no polling, one wake-up per change.
        """
        deadline = self.clock() + timeout
        while not moved():
            remaining = deadline - self.clock()
            if remaining <= 0:
                return
            event = self._locks_changed
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):  # no extra Task per parked request
                    await event.wait()
            self.lock_wakeups += 1

    async def shutdown(self, grace: float | None = None) -> bool:
        """Graceful stop: AdminAction.SHUTDOWN, wait up to `grace` s for ``core.finished``
        (None: `shutdown_grace(core)`, which covers the core's wait for its last "yes"
        to run out before it releases anything).

        Then cancels whatever is still in flight and stops the timer loop; returns whether
        the core finished in time. Does not close the Consul client (its owner does).
        """
        if grace is None:
            grace = shutdown_grace(self.core)
        self.admin(AdminAction.SHUTDOWN)
        deadline = self.clock() + grace
        while not self.core.finished and self.clock() < deadline:
            event = self._answer_changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), min(0.05, max(deadline - self.clock(), 0.0)))
        finished = self.core.finished
        await self.close()
        return finished

    async def close(self) -> None:
        """Cancel in-flight work and the timer loop without telling the core."""
        tasks = list(self._inflight.values())
        self._inflight.clear()
        if self._timer_task is not None:
            tasks.append(self._timer_task)
            self._timer_task = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- core plumbing ----------------------------------------------------------------

    def _dispatch(self, method: Callable[..., list[Command]], *args: Any) -> None:
        try:
            commands = method(*args)
        except Exception:
            log.exception("core raised in %s; continuing", getattr(method, "__name__", method))
            commands = []
        for command in commands:
            self._execute(command)
        self._wake.set()
        lock_index = self._lock_index()
        if lock_index != self._last_lock_index:
            self._last_lock_index = lock_index
            self._locks_changed.set()
            self._locks_changed = asyncio.Event()
        index = self.core.answer_index
        if index != self._last_index:
            self._last_index = index
            self._answer_changed.set()
            self._answer_changed = asyncio.Event()
            for listener in self._listeners:
                try:
                    listener()
                except Exception:
                    log.exception("answer listener failed")

    def _lock_index(self) -> int:
        value = getattr(self.core, "lock_index", 0)
        return value if isinstance(value, int) else 0

    def _execute(self, command: Command) -> None:
        if isinstance(command, SendRequest):
            self._spawn(command.tag, self._send(command.tag, command.request))
        elif isinstance(command, RunHook):
            self._spawn(command.tag, self._hook(command))
        elif isinstance(command, CancelRequest):
            task = self._inflight.pop(command.tag, None)
            if task is not None:
                task.cancel()
        else:  # pragma: no cover - the Command union is closed
            log.error("unknown command %r ignored", type(command).__name__)

    def _spawn(self, tag: str, coro: Awaitable[None]) -> None:
        old = self._inflight.pop(tag, None)
        if old is not None:
            log.warning("tag %s reused while in flight; abandoning the older one", tag)
            old.cancel()
        self._inflight[tag] = asyncio.ensure_future(coro)

    def _finish(self, tag: str) -> bool:
        """Forget `tag`; False if it was cancelled meanwhile (then deliver nothing)."""
        task = self._inflight.get(tag)
        if task is None or task is not asyncio.current_task():
            return False
        del self._inflight[tag]
        return True

    async def _send(self, tag: str, req: Request) -> None:
        """Send one request and deliver exactly one result to the core.

        The client bounds the exchange by ``req.timeout``; the slack here is only a safety
        net. A cancellation that did not come from us (CancelRequest or close() both drop
        the tag from ``_inflight`` first) is delivered as ``ConsulUnreachable``: a result
        the core never hears about would leave its request pending forever, and a pending
        check pass is never re-sent (a replica then loses its check, its session and its
        lock, and cannot get them back).
        """
        result: Response | ConsulUnavailable
        try:
            if req.timeout is not None:
                async with asyncio.timeout(req.timeout + SEND_TIMEOUT_SLACK):
                    result = await self.consul.send(req)
            else:
                result = await self.consul.send(req)
        except TimeoutError:
            result = ConsulTimeout(f"no answer within {req.timeout:g}s")
        except ConsulUnavailable as exc:
            result = exc
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is None or self._inflight.get(tag) is not task:
                raise
            task.uncancel()
            log.warning("request %s was cancelled by a library, not by the core; reporting it as failed", tag)
            result = ConsulUnreachable("request cancelled unexpectedly")
        except Exception as exc:
            log.warning("unexpected error from the Consul client: %s", type(exc).__name__)
            result = ConsulUnreachable(f"unexpected client error: {type(exc).__name__}")
        self.consul_outcomes[_outcome(result)] += 1
        if self._finish(tag):
            self._dispatch(self.core.on_response, tag, result, self.clock())

    async def _hook(self, command: RunHook) -> None:
        try:
            result = await self._hook_runner(command.argv, command.env, command.timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("hook runner failed: %s", type(exc).__name__)
            result = HookResult(exit_code=None, detail=f"hook runner failed: {type(exc).__name__}")
        if self._finish(command.tag):
            self._dispatch(self.core.on_hook_done, command.tag, result, self.clock())

    async def _timer_loop(self) -> None:
        while True:
            deadline = self.core.next_deadline()
            if deadline is not None and not math.isfinite(deadline):
                deadline = None
            now = self.clock()
            if deadline is not None and now >= deadline:
                self._dispatch(self.core.on_timer, now)
                after = self.core.next_deadline()
                # A core that leaves its deadline in the past must not make us spin.
                await asyncio.sleep(_MIN_TIMER_STEP if after is not None and after <= now else 0)
                continue
            self._wake.clear()
            timeout = None if deadline is None else deadline - now
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
