"""The global primary's sender: while THIS DC holds the global lock, drain every DC's outbox.

Run one per DC, next to that DC's coordinator:

    python -m examples.email_outbox.sender --locks http://127.0.0.1:8787 \\
        --consul http://127.0.0.1:8500 --dcs dc1,dc2,dc3 --smtp 127.0.0.1:2525 --id dc1

Per email (each step checks the hold first, and stops when less than BUDGET is left):
claim by CAS with our term (fencing token) -> SMTP send with a stable Message-ID and a
timeout inside the remaining hold -> mark sent by CAS. Events go to a JSONL log (flushed
per line) so a run's analysis can tell WHY a duplicate happened: "accepted" without a
following "marked" from the same sender = the documented crash/lock-loss window; an SMTP
exchange that ended after the hold did = a pause (SIGSTOP) inside the window.

A DC that cannot be read (cut off) is skipped and retried on the next pass: its emails
stay in its own KV until it is reachable again.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import smtplib
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from coordinator.locks_client import LocksClient, LockState, LockUnavailable
from examples.email_outbox.outbox import Consul, ConsulError, Email, claimable, claimed, sent

BUDGET = 0.4
"""Seconds of hold that must remain to start working on one email."""
IDLE_POLL = 0.05


class Sender:
    def __init__(self, args: argparse.Namespace) -> None:
        self.me = args.id
        self.lock_name = args.lock
        self.dcs = args.dcs.split(",")
        self.locks = LocksClient(args.locks.split(","), timeout=1.0)
        self.consul = Consul(args.consul)
        host, port = args.smtp.rsplit(":", 1)
        self.smtp_addr = (host, int(port))
        self.log = Path(args.log).open("a", buffering=1)  # noqa: SIM115 - lives as long as the process
        self.state: LockState | None = None
        self.unmarked: set[str] = set()
        """Ids this process delivered (SMTP accepted) but failed to mark: marked later
        without a resend while our claim on them stands."""

    def event(self, ev: str, **fields: Any) -> None:
        self.log.write(json.dumps({"ev": ev, "by": self.me, "t": time.monotonic(), **fields}) + "\n")

    def hold(self) -> LockState | None:
        """A fresh answer when we hold with at least BUDGET left, else None."""
        try:
            st = self.locks.get(self.lock_name)
        except LockUnavailable:
            return None
        if not st.held or st.term is None or st.remaining() < BUDGET:
            return None
        if self.state is None or self.state.term != st.term:
            self.event("term", term=st.term)
        self.state = st
        return st

    def run_forever(self) -> None:
        while True:
            if self.hold() is None:
                time.sleep(IDLE_POLL)
                continue
            worked = 0
            for dc in self.dcs:
                worked += self.drain(dc)
            if not worked:
                time.sleep(IDLE_POLL)

    def drain(self, dc: str) -> int:
        try:
            records = self.consul.list(dc)
        except ConsulError:
            return 0
        done = 0
        for key, index, mail in sorted(records, key=lambda r: r[0]):
            st = self.hold()
            if st is None or st.term is None:
                return done
            if mail.state == "claimed" and mail.term > st.term:
                return done  # a newer holder exists: we are stale
            if not claimable(mail, st.term):
                continue
            if mail.state == "claimed" and mail.by == self.me and mail.id in self.unmarked:
                done += self.mark_again(dc, key, index, mail)
                continue
            if self.send_one(dc, key, index, mail, st):
                done += 1
        return done

    def mark_again(self, dc: str, key: str, index: int, mail: Email) -> int:
        """We sent it (this process saw "250 accepted") but could not mark it: mark only."""
        try:
            ok = self.consul.cas(dc, key, index, sent(mail)) is not None
        except ConsulError:
            return 0
        if ok:
            self.unmarked.discard(mail.id)
            self.event("marked", id=mail.id, term=mail.term, late=True)
        return int(ok)

    def send_one(self, dc: str, key: str, index: int, mail: Email, st: LockState) -> bool:
        assert st.term is not None
        try:
            new_index = self.consul.cas(dc, key, index, claimed(mail, st.term, self.me))
        except ConsulError:
            return False
        if new_index is None:
            return False
        self.event("claimed", id=mail.id, term=st.term, dc=dc)
        remaining = st.remaining()
        if remaining < BUDGET / 2:
            return False  # leave it claimed: the next holder (or we, next term) resends
        started = time.monotonic()
        try:
            self.smtp(mail, st.term, timeout=remaining - BUDGET / 4)
        except (OSError, smtplib.SMTPException) as exc:
            self.event("smtp_failed", id=mail.id, term=st.term, error=type(exc).__name__)
            return False
        ended = time.monotonic()
        self.event(
            "accepted", id=mail.id, term=st.term, started=started, ended=ended, valid_until=st.valid_until
        )
        try:
            ok = self.consul.cas(dc, key, new_index, sent(claimed(mail, st.term, self.me))) is not None
        except ConsulError:
            ok = False
        self.event("marked" if ok else "mark_failed", id=mail.id, term=st.term)
        if not ok:
            self.unmarked.add(mail.id)
        return ok

    def smtp(self, mail: Email, term: int, timeout: float) -> None:
        msg = EmailMessage()
        msg["From"] = "outbox@example.org"
        msg["To"] = mail.to
        msg["Subject"] = mail.subject
        msg["Message-ID"] = mail.message_id
        msg["X-Sender-Id"] = self.me
        msg["X-Fencing-Term"] = str(term)
        msg.set_content(mail.body)
        with smtplib.SMTP(*self.smtp_addr, timeout=max(timeout, 0.05)) as client:
            client.send_message(msg)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--id", required=True)
    ap.add_argument("--lock", default="email")
    ap.add_argument("--locks", required=True, help="coordinator API URL(s) of this DC, comma-separated")
    ap.add_argument("--consul", required=True, help="this DC's Consul HTTP URL")
    ap.add_argument("--dcs", required=True, help="every DC whose outbox to drain, comma-separated")
    ap.add_argument("--smtp", required=True, help="host:port of the receiving MTA")
    ap.add_argument("--log", required=True)
    args = ap.parse_args()
    print(json.dumps({"sender": args.id}), flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        Sender(args).run_forever()


if __name__ == "__main__":
    main()
