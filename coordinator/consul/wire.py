"""Wire-level currency shared by every shell: `Request` and `Response`.

The asyncio daemon sends a Request with httpx (coordinator.consul.client); the simulator
hands it to the emulated Consul. Both are plain immutable values (Response.headers is a
dict by convention never mutated after construction). Re-exported by
coordinator.consul.sansio, where they were first defined.
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
