"""The virtual clock and event heap of the discrete-event world.

Invariants:
- `now` never decreases; an event never runs before its time;
- events due at the same time run in the order they were scheduled (a sequence number
  breaks ties), so a run is a pure function of the seed;
- a cancelled event never runs.

No `time`, no asyncio: time moves only by popping events.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any

_push = heapq.heappush


class Timer:
    """Handle of a scheduled event; `cancel()` is idempotent."""

    __slots__ = ("alive", "args", "at", "fn", "seq")

    def __init__(self, at: float, seq: int, fn: Callable[..., None], args: tuple[Any, ...]) -> None:
        self.at = at
        self.seq = seq
        self.fn = fn
        self.args = args
        self.alive = True

    def cancel(self) -> None:
        self.alive = False


class EventQueue:
    """A min-heap of `Timer`s on virtual time (seconds)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Timer]] = []
        self._seq = 0
        self.now = 0.0
        self.processed = 0
        self.barrier: float | None = None
        """See `run_with_barrier` (the simulator's next invariant deadline)."""

    def schedule(self, at: float, fn: Callable[..., None], *args: Any) -> Timer:
        """Run `fn(*args)` at virtual time `at` (clamped to now: the past is now)."""
        seq = self._seq = self._seq + 1
        if at < self.now:
            at = self.now
        timer = Timer(at, seq, fn, args)
        _push(self._heap, (at, seq, timer))
        return timer

    def after(self, delay: float, fn: Callable[..., None], *args: Any) -> Timer:
        seq = self._seq = self._seq + 1
        at = self.now + delay
        if at < self.now:
            at = self.now
        timer = Timer(at, seq, fn, args)
        _push(self._heap, (at, seq, timer))
        return timer

    def peek(self) -> float | None:
        """Time of the next live event, or None when nothing is scheduled."""
        heap = self._heap
        while heap and not heap[0][2].alive:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def run_next(self) -> bool:
        """Run the next live event; False when the heap is empty."""
        heap = self._heap
        while heap:
            timer = heapq.heappop(heap)[2]
            if not timer.alive:
                continue
            self.now = timer.at
            timer.alive = False
            self.processed += 1
            timer.fn(*timer.args)
            return True
        return False

    def run_until(self, t: float, after_each: Callable[[], None] | None = None) -> None:
        """Run every event due at or before `t`, then set `now = t`."""
        while True:
            nxt = self.peek()
            if nxt is None or nxt > t:
                break
            self.run_next()
            if after_each is not None:
                after_each()
        self.now = max(self.now, t)

    def run_with_barrier(self, t: float, on_barrier: Callable[[float], None]) -> None:
        """Like `run_until(t)`, but whenever `self.barrier` (re-read before every event) is
        not None and <= the next event's time, call `on_barrier(barrier)` first instead.
        `on_barrier` must move `self.barrier` past that time (or clear it), else this spins.
        The one hot loop of a simulation, hence inlined."""
        heap = self._heap
        pop = heapq.heappop
        while heap:
            at, _, timer = heap[0]
            if not timer.alive:
                pop(heap)
                continue
            if at > t:
                break
            barrier = self.barrier
            if barrier is not None and barrier <= at:
                on_barrier(barrier)
                continue
            pop(heap)
            self.now = at
            timer.alive = False
            self.processed += 1
            timer.fn(*timer.args)
        if t > self.now:
            self.now = t

    def __len__(self) -> int:
        return sum(1 for entry in self._heap if entry[2].alive)
