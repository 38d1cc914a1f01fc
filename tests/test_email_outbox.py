"""The email example: outbox rules, the receiving MTA's deduplication over real SMTP, and a
short faulted run with real processes (emulator, 3 coordinators, 3 senders, aiosmtpd)."""

from __future__ import annotations

import argparse
import smtplib
import socket
import sys
from email.message import EmailMessage
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # examples/ is not an installed package

from examples.email_outbox.outbox import Email, claimable, claimed, decode, encode, sent
from examples.email_outbox.receiver import Mailbox, start_receiver
from examples.email_outbox.run import Run


def test_outbox_codec_and_fencing_rule() -> None:
    mail = Email("dc1-000001", "a@example.org", "s", "b")
    assert decode(encode(mail)) == mail
    assert decode(b"garbage") is None
    assert claimable(mail, 1)
    c5 = claimed(mail, 5, "dc1-s1")
    assert claimable(c5, 6) and claimable(c5, 5)
    assert not claimable(c5, 4), "a lower term never takes over a claim (fencing)"
    assert not claimable(sent(c5), 9)
    assert mail.message_id == "<dc1-000001@outbox.example>"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_receiver_deduplicates_by_message_id(tmp_path: Path) -> None:
    box = Mailbox(tmp_path / "log.jsonl")
    port = _port()
    ctl = start_receiver(box, port)
    try:
        for _ in range(2):
            msg = EmailMessage()
            msg["From"], msg["To"], msg["Subject"] = "a@x.org", "b@x.org", "hi"
            msg["Message-ID"] = "<same@outbox.example>"
            msg.set_content("body")
            with smtplib.SMTP("127.0.0.1", port, timeout=5) as client:
                client.send_message(msg)
    finally:
        ctl.stop()
    assert len(box.deliveries) == 2
    assert list(box.mailbox) == ["<same@outbox.example>"]
    assert box.duplicates == 1
    assert len((tmp_path / "log.jsonl").read_text().splitlines()) == 2


def test_short_faulted_run_loses_nothing() -> None:
    args = argparse.Namespace(emails=90, duration=10.0, drain_timeout=60.0, seed=5, out="")
    result = Run(args).execute()
    assert result["enqueued"] == 90
    assert result["lost"] == 0, result
    assert result["duplicates_unexplained"] == 0, result
    assert result["duplicates"] == result["duplicates_in_documented_window"]
