"""Test doubles for the daemon tests: a scripted core and a scripted Consul sender.

`StubCore` implements the shell contract of coordinator.core.protocol with a hand-set
answer; it is an API/runner-layer double, not a model of ReplicaCore's decisions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from coordinator.consul.errors import ConsulUnavailable
from coordinator.consul.sansio import Request, Response
from coordinator.core.protocol import (
    AdminAction,
    Command,
    HookResult,
    MayWriteAnswer,
    QuorumStatus,
    Reason,
    StatusSnapshot,
    TransitionRecord,
)


@dataclass
class StubCore:
    dc: str = "dc1"
    allowed: bool = True
    token: int = 42
    lease_until: float = float("inf")
    reason: Reason = Reason.NOT_IN_QUORUM
    answer_index: int = 1
    finished: bool = False
    deadline: float | None = None
    on_timer_commands: list[Command] = field(default_factory=list)
    start_commands: list[Command] = field(default_factory=list)
    admin_log: list[AdminAction] = field(default_factory=list)
    responses: list[tuple[str, Response | ConsulUnavailable]] = field(default_factory=list)
    hooks: list[tuple[str, HookResult]] = field(default_factory=list)
    timer_calls: int = 0
    transitions: list[TransitionRecord] = field(default_factory=list)
    finish_on_shutdown: bool = True

    def start(self, now: float) -> list[Command]:
        return list(self.start_commands)

    def next_deadline(self) -> float | None:
        return self.deadline

    def on_timer(self, now: float) -> list[Command]:
        self.timer_calls += 1
        self.deadline = None
        commands, self.on_timer_commands = self.on_timer_commands, []
        return commands

    def on_response(self, tag: str, result: Response | ConsulUnavailable, now: float) -> list[Command]:
        self.responses.append((tag, result))
        return []

    def on_hook_done(self, tag: str, result: HookResult, now: float) -> list[Command]:
        self.hooks.append((tag, result))
        return []

    def on_admin(self, action: AdminAction, now: float) -> list[Command]:
        self.admin_log.append(action)
        if action is AdminAction.FENCE:
            self.set_no(Reason.FENCED_BY_ADMIN, now)
        elif action is AdminAction.SHUTDOWN:
            self.set_no(Reason.SHUTTING_DOWN, now)
            self.finished = self.finish_on_shutdown
        return []

    def set_no(self, reason: Reason, now: float = 0.0) -> None:
        if self.allowed:
            self.transitions.append(TransitionRecord(now, "writable", "fenced", reason.value))
        self.allowed, self.reason = False, reason
        self.answer_index += 1

    def may_write(self, now: float) -> MayWriteAnswer:
        if self.allowed and now < self.lease_until:
            return MayWriteAnswer(
                allowed=True,
                dc=self.dc,
                index=self.answer_index,
                leader="r1",
                token=self.token,
                valid_for=min(self.lease_until - now, 1.5),
                quorum=("dc1", "dc2"),
            )
        return MayWriteAnswer(
            allowed=False, dc=self.dc, index=self.answer_index, reason=self.reason, leader="r1"
        )

    def status(self, now: float) -> StatusSnapshot:
        ans = self.may_write(now)
        return StatusSnapshot(
            replica_id="r1",
            cluster="demo",
            dc=self.dc,
            role="leader",
            dc_state="writable" if ans.allowed else "fenced",
            allowed=ans.allowed,
            reason=ans.reason.value if ans.reason else None,
            leader="r1",
            token=ans.token,
            lease_remaining=ans.valid_for,
            answer_index=self.answer_index,
            admin_fenced=False,
            witness=False,
            consul_error=None,
            quorum=QuorumStatus(True, ("dc1", "dc2"), 2, 2.0, "majority", 0.0),
            directed={"dc1": {"dc2": True, "dc3": False}, "dc2": {"dc1": True, "dc3": True}},
            undirected={"dc1": {"dc2": True, "dc3": False}},
            takeover_in={"dc3": 3.5},
            wan_members=(),
            rtt_ms={"dc2": 1.25},
            timers={"lease": 1.5},
            transitions=tuple(self.transitions),
        )


class StubSender:
    """Answers each request with `handler(req)` (a coroutine function); records requests."""

    def __init__(self, handler: Callable[[Request], asyncio.Future[Response] | object] | None = None) -> None:
        self.sent: list[Request] = []
        self.handler = handler
        self.closed = False

    async def send(self, req: Request) -> Response:
        self.sent.append(req)
        if self.handler is None:
            return Response(200, {}, b"true")
        result = self.handler(req)
        if asyncio.iscoroutine(result):
            result = await result
        assert isinstance(result, Response)
        return result

    async def aclose(self) -> None:
        self.closed = True
