"""Audit of issue 6: the email example's counting helpers."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # examples/ is not an installed package

from examples.email_outbox.analysis import split_count


def test_email_runs_enqueue_exactly_the_requested_count() -> None:
    """`--emails 200` over 3 DCs enqueued 198 (200 // 3 per DC): the split keeps the total."""
    assert split_count(200, 3) == [67, 67, 66]
    for total in range(0, 50):
        for parts in (1, 2, 3, 5):
            shares = split_count(total, parts)
            assert sum(shares) == total and max(shares) - min(shares) <= 1
