"""The emulated Consul of every DC, wired to the event heap and the network model.

`Fabric.call(dc, request, on_result)` is what a replica's Consul client does: the
coordinator's `Request` is turned into the emulator's HTTP request (the bytes that would
cross HTTP: decoded path, query pairs, lower-cased headers, body), evaluated by that DC's
pure router, and the emulator's reply comes back as a `Response` (header names
lower-cased). The emulator's outcomes are honoured exactly as its aiohttp shell does:

- ``Reply``: the request is evaluated when sent; the reply is delivered one local round
  trip (2 x LOCAL_HOP) later (one heap event per local exchange, not two);
- ``Block``: parked until the DC's ``version`` moves or ``wake_at``, then re-evaluated with
  the returned ``resume``;
- ``Forward(dc, request)``: routed per ``Federation.route``: ``deliver`` crosses the
  network (delay, loss) both ways; a lost message or ``hang`` answers 500
  ``Remote DC has no server currently reachable`` after ``forward_timeout`` (unless the
  caller's own timeout fires first, which the replica host enforces); ``fail`` and
  ``unknown`` answer at once.

Each DC model's timers (session TTLs, agent TTL checks) run at ``next_deadline()``.
Invariant: a cancelled call never invokes its callback and leaves nothing parked.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote

from coordinator.consul.sansio import Request, Response
from sim.consul.api import Router
from sim.consul.errors import DC_UNREACHABLE, NO_DC_PATH
from sim.consul.federation import Federation
from sim.consul.http_types import Block, Forward, Reply, Resume, text_reply
from sim.consul.http_types import Request as EmuRequest
from sim.consul.model import Datacenter, DcConfig
from sim.world.clock import EventQueue, Timer
from sim.world.network import Network

LOCAL_HOP = 0.0005
"""One-way latency between a replica and its local Consul agent (seconds)."""
FORWARD_TIMEOUT = 10.0
"""How long a server waits on a forwarded RPC to an unreachable DC (Consul's dial timeout)."""

BUGGIFY_RATE = 0.02
BUGGIFY_SLOW = 0.15
"""A slow local agent: reorders replies and shifts rounds, but stays under the default probe
timeout (0.4s), so it never makes a healthy DC unavailable by itself (that would be a fault,
and the liveness checks would have to know about it)."""

OnResult = Callable[[Response], None]


_DECODED: dict[Request, EmuRequest] = {}
_DECODED_MAX = 4096


def to_emulator(req: Request) -> EmuRequest:
    """The request as Consul's HTTP server would decode it.

    Memoised on the (immutable, hashable) Request: the core repeats the same requests
    (check passes, row reads) and an EmuRequest is an immutable value too, so sharing
    one is invisible to the router (its lazily built query index included).
    """
    emu = _DECODED.get(req)
    if emu is None:
        if len(_DECODED) >= _DECODED_MAX:
            _DECODED.clear()
        emu = _DECODED[req] = EmuRequest(req.method, unquote(req.path), req.params, {}, req.body or b"")
    return emu


def to_response(reply: Reply) -> Response:
    return Response(reply.status, {k.lower(): v for k, v in reply.headers.items()}, reply.body)


@dataclass(slots=True)
class Call:
    """One request in flight through the fabric (one per HTTP exchange)."""

    dc: str
    """The DC evaluating it now (changes when forwarded)."""
    origin: str
    request: EmuRequest
    on_result: OnResult
    resume: Resume | None = None
    wake: Timer | None = None
    alive: bool = True
    forwarded: bool = False
    child: Call | None = None
    """The forwarded copy evaluating in the remote DC, if any."""

    def cancel(self) -> None:
        self.alive = False
        if self.child is not None:
            self.child.cancel()
        if self.wake is not None:
            self.wake.cancel()
            self.wake = None


class Fabric:
    def __init__(
        self,
        queue: EventQueue,
        network: Network,
        rng: random.Random,
        dcs: tuple[str, ...],
        session_expiry: str = "random",
        rpc_hold_timeout: float = 7.0,
    ) -> None:
        self.queue = queue
        self.network = network
        self.federation = Federation(list(dcs))
        self.models: dict[str, Datacenter] = {}
        self.routers: dict[str, Router] = {}
        self._versions: dict[str, int] = {}
        self._parked: dict[str, list[Call]] = {}
        self._timers: dict[str, Timer | None] = {}
        self._timer_at: dict[str, float | None] = {}
        self.requests = 0
        self.rng = rng
        self.buggify = False
        """BUGGIFY: when on, 2% of local replies are slowed by up to BUGGIFY_SLOW seconds."""
        for name in dcs:
            model = Datacenter(
                DcConfig(name, session_expiry=session_expiry, rpc_hold_timeout=rpc_hold_timeout),  # type: ignore[arg-type]
                rng,
                queue.now,
            )
            self.models[name] = model
            self.routers[name] = Router(model, self.federation, rng)
            self._versions[name] = model.version
            self._parked[name] = []
            self._timers[name] = None
            self._timer_at[name] = None

    # -- requests --------------------------------------------------------------------------

    def call(self, dc: str, request: Request, on_result: OnResult) -> Call:
        """Send `request` to DC `dc`'s local agent; `on_result` gets the Response."""
        call = Call(dc, dc, to_emulator(request), on_result)
        self._evaluate(call)
        return call

    def _evaluate(self, call: Call) -> None:
        if not call.alive:
            return
        call.wake = None
        self.requests += 1
        dc = call.dc
        outcome = self.routers[dc].handle(call.request, self.queue.now, call.resume)
        if isinstance(outcome, Block):
            call.resume = outcome.resume
            self._parked[dc].append(call)
            call.wake = self.queue.schedule(outcome.wake_at, self._wake, call)
        elif isinstance(outcome, Forward):
            self._forward(call, outcome)
        else:
            self._answer(call, outcome)
        self.touched(dc)

    def _wake(self, call: Call) -> None:
        parked = self._parked[call.dc]
        if call in parked:
            parked.remove(call)
        call.wake = None
        self._evaluate(call)

    def _answer(self, call: Call, reply: Reply) -> None:
        if call.forwarded:
            delay = self.network.transmit(call.dc, call.origin)
            if delay is None:
                return
            call.forwarded = False
            call.dc = call.origin
            self.queue.after(delay, self._answer, call, reply)
            return
        delay = 2 * LOCAL_HOP
        if self.buggify and self.rng.random() < BUGGIFY_RATE:
            delay += BUGGIFY_SLOW * self.rng.random()
        self.queue.after(delay, self._deliver, call, reply)

    def _deliver(self, call: Call, reply: Reply) -> None:
        if call.alive:
            call.alive = False
            call.on_result(to_response(reply))

    def _forward(self, call: Call, fwd: Forward) -> None:
        route = self.federation.route(call.dc, fwd.dc, self.queue.now)
        if route == "unknown":
            self._answer(call, text_reply(500, NO_DC_PATH))
            return
        if route == "fail":
            self._answer(call, text_reply(500, DC_UNREACHABLE))
            return
        self.queue.after(FORWARD_TIMEOUT, self._give_up, call)
        delay = None if route == "hang" else self.network.transmit(call.dc, fwd.dc)
        if delay is None:
            return
        remote = Call(fwd.dc, call.dc, fwd.request, call.on_result, forwarded=True)
        call.child = remote
        self.queue.after(delay, self._remote_start, call, remote)

    def _remote_start(self, local: Call, remote: Call) -> None:
        if not local.alive:
            return

        def relay(response: Response) -> None:
            if local.alive:
                local.alive = False
                local.on_result(response)

        remote.on_result = relay
        self._evaluate(remote)

    def _give_up(self, call: Call) -> None:
        if call.alive:
            self.queue.after(LOCAL_HOP, self._deliver, call, text_reply(500, DC_UNREACHABLE))

    # -- model time and wake-ups -----------------------------------------------------------

    def touched(self, dc: str) -> None:
        """After anything touched DC `dc`: wake parked calls if its version moved, re-arm its timer."""
        model = self.models[dc]
        while model.version != self._versions[dc]:
            self._versions[dc] = model.version
            parked, self._parked[dc] = self._parked[dc], []
            for call in parked:
                if call.wake is not None:
                    call.wake.cancel()
                    call.wake = None
                if call.alive:
                    self._evaluate_parked(call)
        at = model.next_deadline()
        if at != self._timer_at[dc]:
            old = self._timers[dc]
            if old is not None:
                old.cancel()
            self._timer_at[dc] = at
            self._timers[dc] = None if at is None else self.queue.schedule(at, self._advance, dc)

    def _evaluate_parked(self, call: Call) -> None:
        dc = call.dc
        self.requests += 1
        outcome = self.routers[dc].handle(call.request, self.queue.now, call.resume)
        if isinstance(outcome, Block):
            call.resume = outcome.resume
            self._parked[dc].append(call)
            call.wake = self.queue.schedule(outcome.wake_at, self._wake, call)
        elif isinstance(outcome, Forward):
            self._forward(call, outcome)
        else:
            self._answer(call, outcome)

    def _advance(self, dc: str) -> None:
        self._timer_at[dc] = None
        self._timers[dc] = None
        self.models[dc].advance(self.queue.now)
        self.touched(dc)

    def set_leader(self, dc: str, up: bool) -> None:
        self.models[dc].set_leader(up, self.queue.now)
        self.touched(dc)

    def set_link(self, src: str, dst: str, up: bool) -> None:
        self.federation.set_link(src, dst, up, self.queue.now)

    def parked(self, dc: str) -> int:
        return sum(1 for call in self._parked[dc] if call.alive)
