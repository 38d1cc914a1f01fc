"""Counting an email run: enqueued, delivered, duplicates (explained or not), lost.

Inputs: the ids enqueued, the receiver's `Mailbox` (every accepted SMTP transaction, one
copy per Message-ID) and the senders' JSONL event logs (examples.email_outbox.sender).

A duplicate (a Message-ID delivered more than once) is IN THE DOCUMENTED WINDOW when one
of its deliveries was not followed by its sender's own "marked" event (the sender was
killed, paused or deposed between the SMTP server's "250 accepted" and "mark sent", or
the mark failed), or when its SMTP exchange ended after the sender's hold did (a pause
inside the exchange). Anything else is UNEXPLAINED (target 0).

`concurrent` counts pairs of deliveries of one email by two different senders whose SMTP
exchanges overlapped in time (every process of a run is on one machine, so the senders'
monotonic clocks agree): the lock's guarantee is that this stays 0.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from examples.email_outbox.receiver import Mailbox

Key = tuple[str, str, str]
"""(sender id, email id, term)."""


def _events(logs: Iterable[Path]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for log in logs:
        for line in log.read_text(errors="replace").splitlines():
            try:
                ev = json.loads(line)
            except ValueError:
                continue  # a line cut short by SIGKILL
            if isinstance(ev, dict):
                out.append(ev)
    return out


def classify(enqueued: Iterable[str], box: Mailbox, logs: Iterable[Path]) -> dict[str, Any]:
    """The counts of a run (see the module docstring)."""
    events = _events(logs)
    marked: dict[Key, int] = {}
    suspect: set[Key] = set()
    spans: dict[Key, list[tuple[float, float]]] = {}
    for ev in events:
        key = (str(ev.get("by")), str(ev.get("id")), str(ev.get("term")))
        kind = ev.get("ev")
        if kind == "accepted":
            spans.setdefault(key, []).append((float(ev.get("started", 0)), float(ev.get("ended", 0))))
            if ev.get("ended", 0) > ev.get("valid_until", 0):
                suspect.add(key)
        elif kind == "marked" and not ev.get("late"):
            marked[key] = marked.get(key, 0) + 1
        elif kind == "mark_failed":
            suspect.add(key)
    by_id: dict[str, list[dict[str, Any]]] = {}
    for d in box.deliveries:
        by_id.setdefault(d["message_id"], []).append(d)
    window = unexplained = concurrent = 0
    unexplained_ids: list[str] = []
    for mid, copies in by_id.items():
        if len(copies) < 2:
            continue
        keys = [(c["sender"], c["message_id"].strip("<>").split("@")[0], c["term"]) for c in copies]
        explained = any(k in suspect or keys.count(k) > marked.get(k, 0) for k in keys)
        if explained:
            window += len(copies) - 1
        else:
            unexplained += len(copies) - 1
            unexplained_ids.append(mid)
        concurrent += _overlaps([(k[0], s) for k in set(keys) for s in spans.get(k, [])])
    delivered_ids = {m.strip("<>").split("@")[0] for m in box.mailbox}
    enq = list(enqueued)
    lost = sorted(set(enq) - delivered_ids)
    return {
        "enqueued": len(enq),
        "delivered": len(box.mailbox),
        "deliveries": len(box.deliveries),
        "duplicates": len(box.deliveries) - len(box.mailbox),
        "duplicates_in_documented_window": window,
        "duplicates_unexplained": unexplained,
        "unexplained_sample": unexplained_ids[:10],
        "concurrent_sends": concurrent,
        "lost": len(lost),
        "lost_sample": lost[:10],
    }


def _overlaps(spans: list[tuple[str, tuple[float, float]]]) -> int:
    """Pairs of SMTP exchanges by different senders that overlapped in time."""
    n = 0
    for i, (a, (s1, e1)) in enumerate(spans):
        for b, (s2, e2) in spans[i + 1 :]:
            if a != b and s1 < e2 and s2 < e1:
                n += 1
    return n


def split_count(total: int, parts: int) -> list[int]:
    """`total` split over `parts` as evenly as possible, summing to exactly `total`."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]
