"""The one exception tree of our Consul client.

Every failure of a Consul exchange surfaces as a subclass of `ConsulError`. Errors are
translated at exactly one boundary each: HTTP statuses and bodies by the parsers
(`coordinator.consul.parsing.raise_for_status`), transport exceptions by the adapter
(`coordinator.consul.client.AsyncConsul.send`). Nothing else raises these.

    ConsulError                        base: .status (int | None), .detail (Consul's text, cut short)
    ├── ConsulUnavailable              no usable answer now; retrying later may work.
    │   │                              For a gate on writes this reads as "unknown" = "no".
    │   ├── ConsulUnreachable          transport: connection refused/reset, DNS, TLS, protocol
    │   ├── ConsulTimeout              our client-side timeout fired (connect/read/write/pool)
    │   ├── NoClusterLeader            500 "No cluster leader" (also "Not ready to serve consistent reads")
    │   ├── RateLimited                429, or a "rate limit" message
    │   └── ConsulServerError          any other 5xx; keeps status and body
    ├── DatacenterUnreachable          a `?dc=X` request could not reach DC X
    │   ├── NoPathToDatacenter         500 "No path to datacenter" (X unknown to the WAN pool)
    │   └── RemoteDcUnreachable        500 "Remote DC has no server currently reachable"
    ├── InvalidSession                 500 'invalid session "<id>"' / "missing session" on acquire
    │   └── SessionNotFound            404 on renew (unknown or expired session); also a NotFound
    ├── RequestRejected                the request itself is refused; resending it unchanged won't help
    │   ├── BadRequest                 400, 405, 413, 415 ..., and 500s that reject arguments
    │   │   └── SessionRejected        500 on session create: missing node/check, check critical
    │   ├── AclDenied                  403 "ACL not found" / "Permission denied"
    │   └── NotFound                   404 where 404 is not the endpoint's normal "nothing there"
    ├── TxnRolledBack                  409 from /v1/txn: the transaction was rolled back; .errors
    └── MalformedResponse              status or body is not the documented shape

Groups for callers: a probe of another DC failed ("peer unreachable") when the exception
is one of `PEER_UNREACHABLE`; the local agent cannot be trusted right now when it is a
`ConsulUnavailable`. `SessionNotFound` inherits from both `InvalidSession` and `NotFound`.

Invariant: no message, repr or attribute of these errors contains an ACL token; the
adapter never passes request headers into them and `detail` is only Consul's body text.
"""

from __future__ import annotations

DETAIL_MAX = 300
"""Bodies kept in errors are cut to this many characters."""


class ConsulError(Exception):
    """Base of every error of the Consul client.

    `status` is the HTTP status when one was received (None for transport errors);
    `detail` is Consul's response text (decoded leniently, stripped, cut to DETAIL_MAX).
    """

    def __init__(self, message: str, *, status: int | None = None, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.detail = detail[:DETAIL_MAX]

    def __str__(self) -> str:
        if self.status is None:
            return self.message
        return f"{self.message} (HTTP {self.status})"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status={self.status!r})"


class ConsulUnavailable(ConsulError):
    """No usable answer now (transport failure, timeout, no leader, overload, 5xx)."""


class ConsulUnreachable(ConsulUnavailable):
    """The connection failed: refused, reset, DNS failure, TLS failure, protocol error."""


class ConsulTimeout(ConsulUnavailable):
    """Our client-side timeout fired before a complete response arrived."""


class NoClusterLeader(ConsulUnavailable):
    """The serving cluster has no Raft leader (or is not ready for consistent reads)."""


class RateLimited(ConsulUnavailable):
    """Consul refused the request for rate limiting (HTTP 429, or an RPC rate-limit message)."""


class ConsulServerError(ConsulUnavailable):
    """Any other 5xx. `status` and `detail` keep what Consul said."""


class DatacenterUnreachable(ConsulError):
    """A request forwarded with `?dc=X` could not reach datacenter X."""


class NoPathToDatacenter(DatacenterUnreachable):
    """500 "No path to datacenter": the local servers know no route to that DC."""


class RemoteDcUnreachable(DatacenterUnreachable):
    """500 "Remote DC has no server currently reachable"."""


class InvalidSession(ConsulError):
    """The session named in a lock operation is unknown, invalidated or missing."""


class RequestRejected(ConsulError):
    """Consul refused the request itself; sending it again unchanged will fail again."""


class BadRequest(RequestRejected):
    """The request's arguments were refused (400, 405, 413, 415, or a validating 500)."""


class SessionRejected(BadRequest):
    """Session create refused: node not registered, check missing, or check critical."""


class AclDenied(RequestRejected):
    """403: the token is unknown ("ACL not found") or lacks a permission ("Permission denied")."""


class NotFound(RequestRejected):
    """404 on an endpoint where 404 is not a normal 'nothing there' answer."""


class SessionNotFound(InvalidSession, NotFound):
    """Renew of a session Consul does not know (never existed, destroyed or expired)."""


class TxnRolledBack(ConsulError):
    """409 from /v1/txn: nothing was applied. `errors` is ((op_index, what), ...)."""

    def __init__(self, errors: tuple[tuple[int, str], ...], *, detail: str = "") -> None:
        summary = "; ".join(f"op {i}: {what}" for i, what in errors) or "no error detail"
        super().__init__(f"transaction rolled back: {summary}", status=409, detail=detail)
        self.errors = errors


class MalformedResponse(ConsulError):
    """The status or body is not the shape Consul documents for this endpoint."""


PEER_UNREACHABLE: tuple[type[ConsulError], ...] = (ConsulUnavailable, DatacenterUnreachable)
"""`except PEER_UNREACHABLE:` = a cross-DC probe got no positive answer."""
