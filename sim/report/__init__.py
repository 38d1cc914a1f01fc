"""Reports for one run (simulated or recorded by the partition lab): PNG + self-contained HTML.

    from sim.report import report_history
    html_path, png_path = report_history(events, "out/", "isolate-one-seed1")

`events` is a list of sim.history events (e.g. `sim.history.load(path)`).
"""

from __future__ import annotations

from sim.history import Event


def report_history(events: list[Event], out_dir: str, name: str) -> tuple[str, str]:
    """Build the timeline of `events` and write `<name>.html` and `<name>.png` into out_dir."""
    from sim.report.render import write_report
    from sim.report.timeline import build

    return write_report(build(events), out_dir, name)
