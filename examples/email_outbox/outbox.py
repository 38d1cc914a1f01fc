"""The outbox: emails queued in each DC's own Consul KV, and the CAS steps on them.

Layout (in the KV of the DC where the email was enqueued):

    outbox/<origin-dc>/<message-id>  =  {"id", "to", "subject", "body",
                                         "state": "queued" | "claimed" | "sent",
                                         "term": int, "by": str}

State changes are CAS writes (txn ``cas`` on the ModifyIndex just read) through ``?dc=``:

    queued --claim(term T)--> claimed(T) --SMTP accepted--> sent(T)
    claimed(T_old) --claim(T), T >= T_old--> claimed(T)     (the earlier holder, or our DC's
                                                             previous sender process, died
                                                             or lost the lock mid-send: resend)

The term is the global lock's fencing token: a claim carrying a LOWER term than the one
on the record is never written (`claimable`), and CAS makes every step atomic against a
concurrent writer. So two holders never work on one email at once; the one resend window
(SMTP accepted, then crash / lock lost before "mark sent") is why every email has a
stable Message-ID and the receiver deduplicates by it.

Uses the project's sans-IO Consul builders/parsers with a small synchronous httpx send.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import httpx

from coordinator.consul import sansio as c
from coordinator.consul.client import render_query
from coordinator.consul.errors import ConsulError, ConsulTimeout, ConsulUnreachable, TxnRolledBack

PREFIX = "outbox/"


@dataclass(frozen=True)
class Email:
    id: str
    to: str
    subject: str
    body: str
    state: str = "queued"
    term: int = 0
    by: str = ""

    @property
    def message_id(self) -> str:
        return f"<{self.id}@outbox.example>"


def encode(mail: Email) -> bytes:
    return json.dumps(asdict(mail), sort_keys=True).encode()


def decode(raw: bytes | None) -> Email | None:
    try:
        obj = json.loads(raw or b"")
        return Email(**obj) if isinstance(obj, dict) else None
    except (ValueError, TypeError):
        return None


def key_of(origin_dc: str, mail_id: str) -> str:
    return f"{PREFIX}{origin_dc}/{mail_id}"


def claimable(mail: Email, term: int) -> bool:
    """May a holder with `term` claim it? Queued, or claimed by an earlier term, or by our
    own term (a previous sender process of our DC that died mid-send: the example runs ONE
    sender per DC, so a same-term claim is never live in another process)."""
    return mail.state == "queued" or (mail.state == "claimed" and mail.term <= term)


class Consul:
    """Synchronous sends of sans-IO requests to one Consul agent (HTTP)."""

    def __init__(self, base_url: str, *, timeout: float = 2.0) -> None:
        self.base = base_url.rstrip("/")
        self.http = httpx.Client(trust_env=False, timeout=timeout)

    def send(self, req: c.Request) -> c.Response:
        url = self.base + req.path
        query = render_query(req.params)
        if query:
            url += "?" + query
        try:
            resp = self.http.request(req.method, url, content=req.body, timeout=req.timeout or 2.0)
        except httpx.TimeoutException as exc:
            raise ConsulTimeout(f"timeout: {type(exc).__name__}") from None
        except httpx.HTTPError as exc:
            raise ConsulUnreachable(f"transport: {type(exc).__name__}") from None
        return c.Response(resp.status_code, {k.lower(): v for k, v in resp.headers.items()}, resp.content)

    def close(self) -> None:
        self.http.close()

    # --- outbox steps -----------------------------------------------------------------

    def enqueue(self, origin_dc: str, mail: Email) -> bool:
        """Create the record (CAS 0: never overwrite an existing id) in the local DC."""
        req = c.kv_put(key_of(origin_dc, mail.id), encode(mail), cas=0, timeout=2.0)
        return c.parse_kv_put(self.send(req))

    def list(self, dc: str, timeout: float = 1.5) -> list[tuple[str, int, Email]]:
        """(key, ModifyIndex, email) of every record in DC `dc` (consistent read)."""
        req = c.kv_get(PREFIX, dc=dc, recurse=True, consistency="consistent", timeout=timeout)
        out: list[tuple[str, int, Email]] = []
        for entry in c.parse_kv_get(self.send(req)).entries:
            mail = decode(entry.value)
            if mail is not None:
                out.append((entry.key, entry.modify_index, mail))
        return out

    def cas(self, dc: str, key: str, index: int, mail: Email, timeout: float = 1.5) -> int | None:
        """Write `mail` iff the record is still at `index`; the new ModifyIndex, or None if
        the record changed (someone else moved it). Other failures raise ConsulError
        (outcome unknown)."""
        req = c.txn([c.TxnOp.cas(key, encode(mail), index)], dc=dc, timeout=timeout)
        try:
            res = c.parse_txn(self.send(req))
        except TxnRolledBack:
            return None
        return res.results[0].modify_index if res.results else None


def claimed(mail: Email, term: int, by: str) -> Email:
    return replace(mail, state="claimed", term=term, by=by)


def sent(mail: Email) -> Email:
    return replace(mail, state="sent")


__all__ = [
    "PREFIX",
    "Consul",
    "ConsulError",
    "Email",
    "claimable",
    "claimed",
    "decode",
    "encode",
    "key_of",
    "sent",
]


def enqueue_spread(consul: Consul, dc: str, count: int, spread: float, seed: int,
                   record: Callable[[str], None]) -> None:
    """Enqueue `count` emails into `dc`'s outbox, evenly over `spread` seconds.

    Each email is retried until Consul accepts it (a cut-off DC keeps its emails; the
    enqueuer only waits for its OWN DC's Consul); `record(mail_id)` is called once per
    accepted email. Ids are stable per (dc, index, seed): the receiver dedups by them.
    """
    start = time.monotonic()
    for i in range(count):
        mail = Email(f"{dc}-{i:06d}-{seed}", f"user{i}@{dc}.example", f"hello {i}", f"body {i}")
        while True:
            try:
                if consul.enqueue(dc, mail):
                    break
            except ConsulError:
                pass
            time.sleep(0.05)
        record(mail.id)
        delay = start + spread * (i + 1) / count - time.monotonic()
        if delay > 0:
            time.sleep(delay)
