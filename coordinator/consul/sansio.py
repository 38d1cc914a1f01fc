"""Pure Consul HTTP request building and response parsing (gidgethub style).

`Request` and `Response` are the wire-level currency shared by every shell: the asyncio
daemon sends a Request with httpx, the simulator hands it to the emulated Consul model.
Builders return Requests; parsers take Responses and return typed results or raise the
typed errors of coordinator.consul.errors. Nothing here does IO or reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Request:
    method: str
    """HTTP method: GET, PUT, DELETE, POST."""
    path: str
    """Path starting with /v1/..., already percent-encoded where needed."""
    params: tuple[tuple[str, str], ...] = ()
    """Query parameters in order; a flag such as `?recurse` is ("recurse", "")."""
    body: bytes | None = None
    timeout: float | None = None
    """Client-side timeout in seconds for the whole exchange; None = adapter default."""


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    """Header names lower-cased."""
    body: bytes = b""
