"""The one error type the pure model and router raise: an HTTP status plus Consul's text."""

from __future__ import annotations


class ConsulError(Exception):
    """An error Consul reports as `status` with `message` as the text/plain body.

    Most RPC-level errors in Consul surface as HTTP 500 with the bare error string, so
    500 is the default.
    """

    def __init__(self, message: str, status: int = 500) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


NO_LEADER = "No cluster leader"
NO_DC_PATH = "No path to datacenter"
DC_UNREACHABLE = "Remote DC has no server currently reachable"
MISSING_NODE = "Missing node registration"
ACL_NOT_FOUND = "ACL not found"
PERMISSION_DENIED = "Permission denied"
