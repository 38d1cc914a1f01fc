"""Fencing-token helpers for the protected resource (docs/safety.md, "Fencing tokens").

What a token is: every may-write "yes" of DC ``dc`` carries ``token``, the ModifyIndex
that the DC's epoch key ``coordinator/<cluster>/dc/<dc>/epoch`` got when the DC's current
writable period began (a CAS write by the DC leader on its way from catching-up to
writable). Consul's Raft index never goes backwards, so tokens strictly increase per DC
across leader changes and fence cycles; one writable period keeps one token.

Contract for a datastore (pick one or both):

1. `FencingGuard`: remember the highest token accepted per DC and refuse any write whose
   token is LOWER (equal is the same writable period: accept). Keep the guard's memory
   in the datastore itself, updated atomically with the write it admits, or it protects
   nothing. Tokens of different DCs are never compared: they are indices of different
   Consul clusters.
2. Against Consul: `epoch_request` builds a ``?consistent`` read of the DC's epoch key,
   `epoch_index` parses its answer; `is_current(token, index)` is true iff no later
   writable period has begun in that DC. A stale token is proof that its writer was
   fenced (or replaced); a current one proves nothing about the writer's lease, which
   only the coordinator's ``valid_for_ms`` bounds.

Pure (no IO, no clock): the caller sends the Request with any client, e.g.
``await AsyncConsul(config).send(epoch_request("demo", "dc1"))``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from coordinator.consul import sansio as c


class StaleToken(Exception):
    """A write carried a token lower than one already accepted for its DC."""

    def __init__(self, dc: str, token: int, highest: int) -> None:
        super().__init__(f"fencing token {token} of {dc} is stale: {highest} was already accepted")
        self.dc = dc
        self.token = token
        self.highest = highest


def epoch_key(cluster: str, dc: str) -> str:
    """The KV key (in DC ``dc``'s own Consul) whose ModifyIndex is the DC's current token."""
    return f"coordinator/{cluster}/dc/{dc}/epoch"


def epoch_request(cluster: str, dc: str, *, via_dc: str | None = None, timeout: float = 2.0) -> c.Request:
    """A ``?consistent`` GET of the epoch key; ``via_dc`` adds ``?dc=`` for a remote DC."""
    return c.kv_get(epoch_key(cluster, dc), dc=via_dc, consistency="consistent", timeout=timeout)


def epoch_index(resp: c.Response) -> int:
    """The epoch key's ModifyIndex (0 when the key does not exist: no token was ever minted).

    Raises the client's ConsulError subclasses for error answers, like every parser.
    """
    entry = c.parse_kv_get(resp).entry
    return 0 if entry is None else entry.modify_index


def is_current(token: int, current_epoch_index: int) -> bool:
    """True iff ``token`` belongs to the DC's latest writable period (no newer epoch exists)."""
    return token >= current_epoch_index > 0


@dataclass
class FencingGuard:
    """The resource-side check: per DC, refuse tokens lower than the highest accepted.

    Invariant: ``highest[dc]`` never decreases. Not thread-safe; keep it (or its
    ``highest`` map) inside the datastore's own transaction.
    """

    highest: dict[str, int] = field(default_factory=dict)

    def admits(self, dc: str, token: int) -> bool:
        """Would a write from ``dc`` with ``token`` be accepted? (does not record it)"""
        return token >= self.highest.get(dc, 0)

    def accept(self, dc: str, token: int) -> None:
        """Record a write from ``dc`` with ``token``; raise `StaleToken` if it is lower."""
        if isinstance(token, bool) or not isinstance(token, int) or token <= 0:
            raise ValueError(f"a fencing token is a positive integer, got {token!r}")
        highest = self.highest.get(dc, 0)
        if token < highest:
            raise StaleToken(dc, token, highest)
        self.highest[dc] = token
