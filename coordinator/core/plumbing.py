"""Shared plumbing of the replica core: Consul key names, in-flight request bookkeeping,
local-Consul health with exponential backoff, and result unwrapping.

Invariants:
- every tag handed to the shell is unique for the life of one `Inflight` (a counter);
- a result whose tag is no longer tracked (cancelled, superseded, after shutdown) is
  dropped by the caller: `Inflight.pop` returns None for it;
- `unwrap` never lets anything but a `ConsulError` escape: a non-Consul exception from
  the shell reads as `ConsulUnavailable`, a parser bug as `MalformedResponse`.

Pure: no clock, no IO.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from coordinator.consul.errors import (
    ConsulError,
    ConsulUnavailable,
    MalformedResponse,
    NoClusterLeader,
)
from coordinator.consul.sansio import Request, Response
from coordinator.core.protocol import CancelRequest, Command, Reason, SendRequest

T = TypeVar("T")

Result = Response | BaseException
"""What the shell delivers for a SendRequest: a Response or the exception it hit."""


@dataclass(frozen=True)
class Keys:
    """The Consul KV keys of one DC of one cluster (all in that DC's own KV)."""

    cluster: str
    dc: str

    def base(self, dc: str | None = None) -> str:
        return f"coordinator/{self.cluster}/dc/{dc or self.dc}"

    @property
    def leader(self) -> str:
        """Local leader lock: held (acquire=) by the DC leader replica's session."""
        return self.base() + "/leader"

    @property
    def epoch(self) -> str:
        """Fencing epoch: its ModifyIndex, written by CAS on each entry to catching-up, is the token."""
        return self.base() + "/epoch"

    def row(self, dc: str | None = None) -> str:
        """The reachability row a DC leader publishes every probe round (read by peers with ?dc=)."""
        return self.base(dc) + "/row"

    @property
    def admin_fence(self) -> str:
        """DC-wide admin fence: while this key exists the DC is fenced by an operator
        (`POST /v1/fence` on any replica writes it, `/v1/unfence` deletes it). Every DC
        leader reads it in each probe round's txn, so it survives a change of leader."""
        return self.base() + "/admin-fence"


@dataclass
class Pending:
    """One request handed to the shell and not answered yet."""

    tag: str
    kind: str
    """Dotted name, owner first: "lock.acquire", "round.peer", ..."""
    sent_at: float
    request: Request
    data: object = None
    seq: int = 0
    """Send order: strictly increasing over the life of the Inflight (equal times are common)."""


class Inflight:
    """Allocates tags and remembers what each in-flight request was for.

    Invariant: `_kinds[k]` is the number of pending requests of kind `k` (no zero
    entries), so `has` is O(1): the core asks it several times per step.
    """

    def __init__(self) -> None:
        self._counter = 0
        self._pending: dict[str, Pending] = {}
        self._kinds: dict[str, int] = {}

    def send(self, kind: str, request: Request, now: float, data: object = None) -> SendRequest:
        self._counter += 1
        tag = f"{kind}#{self._counter}"
        self._pending[tag] = Pending(tag, kind, now, request, data, self._counter)
        self._kinds[kind] = self._kinds.get(kind, 0) + 1
        return SendRequest(tag, request)

    def _forget(self, kind: str) -> None:
        left = self._kinds[kind] - 1
        if left:
            self._kinds[kind] = left
        else:
            del self._kinds[kind]

    @property
    def sent(self) -> int:
        """How many requests were sent so far (the `seq` of the latest one)."""
        return self._counter

    def pop(self, tag: str) -> Pending | None:
        pending = self._pending.pop(tag, None)
        if pending is not None:
            self._forget(pending.kind)
        return pending

    def has(self, kind: str) -> bool:
        return kind in self._kinds

    def of_kind(self, kind: str) -> list[Pending]:
        return [p for p in self._pending.values() if p.kind == kind]

    def cancel(self, kinds: Iterable[str]) -> list[Command]:
        """Forget every request whose kind is in `kinds` (or starts with "<k>." for k in kinds)."""
        wanted = tuple(kinds)
        out: list[Command] = []
        for tag, p in list(self._pending.items()):
            if p.kind in wanted or p.kind.split(".", 1)[0] in wanted:
                del self._pending[tag]
                self._forget(p.kind)
                out.append(CancelRequest(tag))
        return out

    def cancel_all(self) -> list[Command]:
        out: list[Command] = [CancelRequest(tag) for tag in self._pending]
        self._pending.clear()
        self._kinds.clear()
        return out

    def __len__(self) -> int:
        return len(self._pending)


def unwrap(result: Result, parser: Callable[[Response], T]) -> T:
    """Parse a delivered result or raise the ConsulError it stands for (and only that)."""
    if isinstance(result, ConsulError):
        raise result
    if isinstance(result, BaseException):
        raise ConsulUnavailable(f"request failed: {type(result).__name__}")
    try:
        return parser(result)
    except ConsulError:
        raise
    except Exception as exc:  # parser contract says this cannot happen; unknown means no
        raise MalformedResponse(f"unparsable response: {type(exc).__name__}") from exc


def reason_for(exc: ConsulError) -> Reason:
    """The may-write reason a failure of LOCAL Consul stands for."""
    return Reason.NO_CONSUL_LEADER if isinstance(exc, NoClusterLeader) else Reason.CONSUL_UNAVAILABLE


class LocalHealth:
    """Whether local Consul is currently trusted, and the retry backoff after failures.

    `error` is the reason of the latest local failure, cleared by the next local success
    of ANY request (local Consul answered, so it is no longer "unknown"). Backoff is per
    action `kind`: it doubles with every consecutive failure of that kind from `base`,
    capped at `cap`, and resets when that kind succeeds.
    """

    def __init__(self, base: float, cap: float) -> None:
        self.base = min(base, cap)
        self.cap = cap
        self.counts: dict[str, int] = {}
        self.error: Reason | None = None
        self.detail = ""

    @property
    def failures(self) -> int:
        """Consecutive failures of the most-failing action (0 when all succeed)."""
        return max(self.counts.values(), default=0)

    def failure(self, exc: ConsulError, kind: str = "") -> float:
        """Record a failure of `kind`; return how long to wait before retrying it."""
        self.counts[kind] = self.counts.get(kind, 0) + 1
        self.error = reason_for(exc)
        self.detail = str(exc)[:200]
        return self.backoff(kind)

    def success(self, kind: str = "") -> None:
        self.counts.pop(kind, None)
        self.error = None
        self.detail = ""

    def backoff(self, kind: str = "") -> float:
        n = self.counts.get(kind, 0)
        if n == 0:
            return self.base
        return float(min(self.cap, self.base * 2 ** min(n - 1, 30)))
