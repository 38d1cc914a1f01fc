"""The partition lab end to end: real namespaces, real packet drops (needs root).

Skips, with the reason, where namespaces or iptables cannot be used; never passes
without running. The full scenario set is `python -m sim.lab run all`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.lab import net
from sim.lab.cli import run_one

pytestmark = [pytest.mark.lab, pytest.mark.timeout(240)]

_REASON = net.unavailable_reason()
needs_lab = pytest.mark.skipif(_REASON is not None, reason=f"partition lab unavailable: {_REASON}")


def _leftovers() -> list[str]:
    out = net.run(["ip", "netns", "list"], check=False).stdout
    links = net.run(["ip", "-o", "link", "show"], check=False).stdout
    return [line for line in (out + links).splitlines() if "cqlab-dc" in line or ": cqlab" in line]


@needs_lab
@pytest.mark.parametrize("scenario", ["isolate-one", "one-way"])
def test_minority_fences_and_rejoins_with_no_violation(scenario: str, tmp_path: Path) -> None:
    result = run_one(scenario, tmp_path, status_interval=0.5)
    evidence = f"see {result.run_dir} (history.jsonl, report.html, status.jsonl, logs/)"
    assert result.error is None, result.error
    assert result.violations == [], result.violations
    lat = result.latencies
    assert lat.unfenced == [], f"cut-off DC(s) stayed writable: {lat.unfenced}"
    assert len(lat.fence) == 1, "the minority DC must fence once"
    assert len(lat.rejoin) == 1, "the minority DC must be writable again after the heal"
    assert lat.false_fences == 0, f"a DC of the intact majority fenced: {evidence}"
    assert result.writes_accepted > 0
    assert result.report is not None and Path(result.report).exists(), result.notes
    assert (Path(result.run_dir) / "report.png").exists()
    history = (Path(result.run_dir) / "history.jsonl").read_text(encoding="utf-8")
    assert '"kind":"link"' in history and '"up":false' in history
    assert _leftovers() == [], "the lab must tear down every cqlab namespace and link"
