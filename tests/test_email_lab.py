"""The email example under the partition lab (real namespaces, iptables cuts, SIGKILL and
SIGSTOP of senders and coordinators): a short run loses nothing and every duplicate is
one of the documented crash/pause-in-the-window cases. Needs root; skips with the reason
where namespaces are unavailable. The full run: examples/email_outbox/README.md."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # examples/ is not an installed package

from examples.email_outbox.lab_run import parse_args, run_lab
from sim.lab import net

pytestmark = [pytest.mark.lab, pytest.mark.timeout(400)]

_REASON = net.unavailable_reason()


@pytest.mark.skipif(_REASON is not None, reason=f"partition lab unavailable: {_REASON}")
def test_short_lab_email_run_loses_nothing_and_has_no_unexplained_duplicate(tmp_path: Path) -> None:
    args = parse_args(["--emails", "300", "--duration", "40", "--drain-timeout", "120", "--seed", "5"])
    result = run_lab(args, tmp_path / "run")
    assert result["enqueued"] == 300
    assert sum(result["faults"].values()) >= 5, result["faults"]
    assert result["lost"] == 0, result
    assert result["duplicates_unexplained"] == 0, result
    assert result["duplicates"] == result["duplicates_in_documented_window"]
    assert result["concurrent_sends"] == 0, result
    assert not [ln for ln in net.run(["ip", "netns", "list"], check=False).stdout.splitlines()
                if ln.startswith("cqlab-")], "the lab is torn down"
