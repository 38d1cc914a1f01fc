"""Typed request/outcome values of the pure router (no I/O)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any


@dataclass(frozen=True)
class Request:
    """One HTTP request exactly as it arrived.

    `query` keeps order and repeats; a bare flag (`?recurse`) has value "". Header names
    are lower-cased.
    """

    method: str
    path: str
    query: tuple[tuple[str, str], ...] = ()
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    @cached_property
    def _first(self) -> dict[str, str]:
        """Each query parameter's FIRST value (built once per request, on first lookup)."""
        first: dict[str, str] = {}
        for k, v in self.query:
            first.setdefault(k, v)
        return first

    def has(self, name: str) -> bool:
        return name in self._first

    def param(self, name: str) -> str | None:
        return self._first.get(name)


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The decoded JSON body (convenience for tests and simulators)."""
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()


@dataclass(frozen=True)
class Resume:
    """Opaque continuation the shell hands back when re-invoking a blocked request."""

    deadline: float | None = None
    """Blocking-query deadline (wait + jitter from the FIRST evaluation)."""
    hold_until: float | None = None
    """Leaderless hold (rpc_hold_timeout) expiry."""


@dataclass(frozen=True, slots=True)
class Watch:
    """What a parked blocking KV query depends on.

    Contract: the query's answer (index and body) can only change when a KV key `kv_key`
    (exactly), or any KV key starting with `kv_prefix`, is written or tombstoned
    (see `Datacenter.take_kv_changes`), or when the DC's leader flips. `kv_prefix=""`
    means any KV change. A shell may therefore skip re-evaluating the query on other
    changes of the DC; a shell that ignores the watch (re-evaluates on every `version`
    change) is still correct.
    """

    kv_key: str | None = None
    kv_prefix: str | None = None


@dataclass(frozen=True)
class Block:
    """Nothing to answer yet. Re-invoke `handle(request, now, resume)` when the DC's
    `version` changes or at `wake_at`, whichever comes first. Spurious re-invocations are
    harmless (they return an equal Block). `watch` (optional) narrows which version
    changes can matter; None means any."""

    wake_at: float
    resume: Resume
    watch: Watch | None = None


@dataclass(frozen=True)
class Forward:
    """The request names another DC (`?dc=`); the shell delivers it (see Federation.route)."""

    dc: str
    request: Request


Outcome = Reply | Block | Forward

JSON_CT = "application/json"
TEXT_CT = "text/plain; charset=utf-8"


COMPACT = json.JSONEncoder(separators=(",", ":"))
"""One shared encoder: `json.dumps` with non-default separators builds a new one per call."""


def json_reply(obj: object, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    return json_reply_body(COMPACT.encode(obj).encode(), headers, status)


def json_reply_body(body: bytes, headers: dict[str, str] | None = None, status: int = 200) -> Reply:
    """`json_reply` for a body already encoded with `COMPACT` (e.g. a memoised one)."""
    hdrs = {"Content-Type": JSON_CT}
    if headers:
        hdrs.update(headers)
    return Reply(status, hdrs, body)


def text_reply(status: int, text: str, headers: dict[str, str] | None = None) -> Reply:
    hdrs = {"Content-Type": TEXT_CT}
    if headers:
        hdrs.update(headers)
    return Reply(status, hdrs, text.encode())


def ci_get(obj: dict[str, object], name: str) -> tuple[bool, object]:
    """Case-insensitive field lookup, like Go's encoding/json. Returns (present, value)."""
    if name in obj:
        return True, obj[name]
    lname = name.lower()
    for k, v in obj.items():
        if k.lower() == lname:
            return True, v
    return False, None
