"""The contract between the sans-IO core and its shells (the asyncio daemon, the simulator).

A shell owns one `ReplicaCore` (coordinator.core.replica) per coordinator replica and:

1. calls ``core.start(now)`` once, then ``core.on_timer(now)`` whenever
   ``now >= core.next_deadline()`` (the deadline may move after any call);
2. executes every `Command` the core returns, in order:

   ============================  ======================================================
   SendRequest(tag, request)      send it (enforcing ``request.timeout``) and later call
                                  ``core.on_response(tag, result, now)`` with a
                                  ``Response`` or a ``ConsulUnavailable`` error
   CancelRequest(tag)             abandon it; never deliver its result
   RunHook(tag, argv, env, t)     run the command with at most ``t`` seconds; then call
                                  ``core.on_hook_done(tag, HookResult, now)``
   ============================  ======================================================

3. passes admin requests with ``core.on_admin(command, now)``;
4. answers every "may I write?" with ``core.may_write(now)``; long-polls wait until
   ``core.answer_index`` moves past the client's index (the core bumps it on every change
   of the answer, including a lease running out, for which it sets a deadline).

``now`` is the shell's MONOTONIC clock in seconds (virtual time in the simulator). Every
method returns ``list[Command]``. Tags are opaque strings unique among in-flight requests.

Safety contract: ``may_write(now).allowed`` is true only when every condition of
docs/safety.md holds at ``now``; anything unknown answers no with a `Reason`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from coordinator.consul.sansio import Request


@dataclass(frozen=True)
class SendRequest:
    tag: str
    request: Request


@dataclass(frozen=True)
class CancelRequest:
    tag: str


@dataclass(frozen=True)
class RunHook:
    tag: str
    argv: tuple[str, ...]
    env: Mapping[str, str]
    """Extra environment for the hook (COORDINATOR_DC, COORDINATOR_FENCED_SECONDS, COORDINATOR_TOKEN...)."""
    timeout: float


Command = SendRequest | CancelRequest | RunHook


@dataclass(frozen=True)
class HookResult:
    exit_code: int | None
    """None when the hook timed out or could not be started."""
    detail: str = ""


class AdminAction(enum.Enum):
    CAUGHT_UP = "caught-up"
    FENCE = "fence"
    UNFENCE = "unfence"
    SHUTDOWN = "shutdown"
    """Graceful stop: release the leader key, destroy the session, answer no from now on."""


class Reason(enum.Enum):
    """Why may-write says no. The fixed, documented set (docs/operations.md)."""

    STARTING = "starting"
    NOT_LEADER = "not-leader"
    CONSUL_UNAVAILABLE = "consul-unavailable"
    NO_CONSUL_LEADER = "no-consul-leader"
    NOT_IN_QUORUM = "not-in-quorum"
    STALE_VIEW = "stale-view"
    LEASE_EXPIRED = "lease-expired"
    CATCHING_UP = "catching-up"
    FENCED_BY_ADMIN = "fenced-by-admin"
    WITNESS = "witness"
    SHUTTING_DOWN = "shutting-down"


@dataclass(frozen=True)
class MayWriteAnswer:
    allowed: bool
    dc: str
    index: int
    """The core's answer_index when this answer was computed (for long-polling)."""
    reason: Reason | None = None
    """Set iff not allowed."""
    leader: str | None = None
    """Replica id of the DC leader, when known."""
    token: int | None = None
    """Fencing token; set iff allowed."""
    valid_for: float = 0.0
    """Seconds the yes stays valid from `now` (0 when not allowed)."""
    quorum: tuple[str, ...] = field(default_factory=tuple)
    """DCs of the quorum this DC belongs to (empty when not in quorum)."""


@dataclass(frozen=True)
class TransitionRecord:
    """One DC state change: `at` is the replica's monotonic clock (seconds)."""

    at: float
    from_state: str
    to_state: str
    reason: str


@dataclass(frozen=True)
class QuorumStatus:
    """The last probe round's quorum decision, as builtins."""

    in_quorum: bool
    members: tuple[str, ...]
    weight: int
    threshold: float
    reason: str
    round_started_at: float
    """Monotonic send time (t0) of the round that produced it."""


@dataclass(frozen=True)
class WanMember:
    """A WAN gossip member (display only: never used to decide "up"). status: 1 alive .. 4 failed."""

    name: str
    addr: str
    port: int
    dc: str
    status: int


@dataclass(frozen=True)
class StatusSnapshot:
    """Everything `GET /v1/status` shows; plain dataclasses of builtins
    (`dataclasses.asdict` + `json.dumps` encode it). Times are seconds.
    """

    replica_id: str
    cluster: str
    dc: str
    role: str
    """leader | follower | candidate | stopped"""
    dc_state: str
    """fenced | catching-up | writable"""
    allowed: bool
    reason: str | None
    leader: str | None
    token: int | None
    lease_remaining: float
    answer_index: int
    admin_fenced: bool
    witness: bool
    consul_error: str | None
    """Detail of the latest local Consul failure, None when the last local call succeeded."""
    quorum: QuorumStatus | None
    directed: dict[str, dict[str, bool]]
    """directed[a][b]: a's evidence that b is up (the one-way view)."""
    undirected: dict[str, dict[str, bool]]
    """undirected[a][b]: the link works both ways."""
    takeover_in: dict[str, float]
    """Seconds until the quorum may take over each DC outside it."""
    wan_members: tuple[WanMember, ...]
    rtt_ms: dict[str, float]
    """Estimated RTT (Vivaldi coordinates) from this DC to each other DC, milliseconds."""
    timers: dict[str, float]
    """Configured and derived timers."""
    transitions: tuple[TransitionRecord, ...]
    """The last ~50 DC state changes, oldest first."""
    admin_fence: tuple[str, ...] = ()
    """What keeps the admin fence on: "local" (`POST /v1/fence` on this replica) and/or
    "dc-wide" (the DC's admin-fence key, as this replica's latest applied round read it)."""
