"""The receiving MTA: a real SMTP server (aiosmtpd) that records every delivery.

Every DATA the server accepts is one delivery, appended to `deliveries` (and to a JSONL
file when given) with its Message-ID. The `mailbox` keeps ONE copy per Message-ID: that is
the deduplication a receiver must do, because a sender that crashes (or loses the lock)
between the SMTP server's "250 accepted" and its own "mark sent" cannot know the email
arrived, and the next holder sends it again. `duplicates` counts what was dropped.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass
class Mailbox:
    log_path: Path | None = None
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    mailbox: dict[str, dict[str, Any]] = field(default_factory=dict)
    duplicates: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def deliver(self, raw: bytes, peer: str) -> None:
        msg = message_from_bytes(raw)
        rec: dict[str, Any] = {
            "message_id": str(msg.get("Message-ID", "")),
            "sender": str(msg.get("X-Sender-Id", "")),
            "term": str(msg.get("X-Fencing-Term", "")),
            "at": time.monotonic(),
            "peer": peer,
        }
        with self.lock:
            self.deliveries.append(rec)
            if rec["message_id"] in self.mailbox:
                self.duplicates += 1
            else:
                self.mailbox[rec["message_id"]] = rec
            if self.log_path is not None:
                with self.log_path.open("a") as fh:
                    fh.write(json.dumps(rec) + "\n")


class _Handler:
    def __init__(self, box: Mailbox) -> None:
        self.box = box

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        self.box.deliver(content, str(session.peer))
        return "250 Message accepted for delivery"


def start_receiver(box: Mailbox, port: int, hostname: str = "127.0.0.1") -> Controller:
    """Start the SMTP server on `hostname`:`port` in a background thread; `.stop()` it.
    Several servers (e.g. one per lab DC's management address) may share one `box`."""
    ctl = Controller(_Handler(box), hostname=hostname, port=port)
    ctl.start()
    return ctl
