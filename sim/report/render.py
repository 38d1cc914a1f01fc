"""Render a Timeline as a PNG (matplotlib, Agg backend) and a self-contained HTML page.

The PNG: one swim-lane per DC coloured by state (writable with its token written on the
bar, catching-up, fenced, down), one lane per global lock (when the history has any)
whose bars are the believed holdings coloured by the holder's DC and labelled with the
replica and term, shaded fault bands with their description, one thin strip
per DC pair whose link ever changed (up / one-way / down / degraded), red marks at
violations and a dashed line where faults stopped. The HTML inlines the PNG as base64 and
adds the metrics table, the violations and the fault list; it loads nothing from outside.
"""

from __future__ import annotations

import base64
import html
import io
import os
from statistics import mean
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import Patch

from sim.report.timeline import Segment, Timeline

STATE_COLOURS = {
    "writable": "#2e9e44",
    "catching-up": "#f0a030",
    "fenced": "#b8b8b8",
    "down": "#303030",
    "starting": "#e4e4ec",
}
LINK_COLOURS = {"up": "#d8f0d8", "oneway": "#f4c430", "down": "#d62728", "degraded": "#9467bd"}
MAX_STRIPS = 40
HOLDER_COLOURS = ("#1f77b4", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f", "#ff7f0e", "#9467bd")
"""Global-lock lane bars, one colour per DC (in topology order, cycling)."""


def _holder_bars(ax: Any, segments: list[Segment], y: float, dcs: tuple[str, ...], t_end: float) -> None:
    colour = {dc: HOLDER_COLOURS[i % len(HOLDER_COLOURS)] for i, dc in enumerate(dcs)}
    for seg in segments:
        width = max(seg.end - seg.start, t_end * 1e-4)
        ax.broken_barh([(seg.start, width)], (y, 0.5), facecolors=colour.get(seg.state, "#444444"),
                       edgecolor="none")
    # Consecutive renewals by one claimant are drawn as one label over their union.
    runs: list[tuple[float, float, str]] = []
    for seg in segments:
        if runs and runs[-1][2] == seg.label and seg.start - runs[-1][1] < t_end * 0.01:
            runs[-1] = (runs[-1][0], max(runs[-1][1], seg.end), seg.label)
        else:
            runs.append((seg.start, seg.end, seg.label))
    for start, end, label in runs:
        if end - start > t_end * 0.06:
            ax.text((start + end) / 2, y + 0.25, label, ha="center", va="center", fontsize=6, color="white")


def _bars(ax: Any, segments: list[Segment], y: float, height: float, colours: dict[str, str],
          labels: bool, t_end: float) -> None:
    for seg in segments:
        width = max(seg.end - seg.start, t_end * 1e-4)
        ax.broken_barh([(seg.start, width)], (y, height), facecolors=colours.get(seg.state, "#ffffff"),
                       edgecolor="none")
        if labels and seg.label and width > t_end * 0.03:
            ax.text(seg.start + width / 2, y + height / 2, f"t{seg.label}", ha="center", va="center",
                    fontsize=7, color="white")


def render_png(tl: Timeline) -> bytes:
    strips = [pair for pair, segs in sorted(tl.pair_strips.items()) if any(s.state != "up" for s in segs)]
    shown = strips[:MAX_STRIPS]
    locks = sorted(tl.global_lanes)
    rows = len(tl.dcs) + 0.4 * len(shown) + 0.7 * len(locks)
    fig, ax = plt.subplots(figsize=(14, 1.6 + 0.45 * rows), dpi=100)
    y = 0.0
    ticks: list[float] = []
    names: list[str] = []
    for pair in reversed(shown):
        _bars(ax, tl.pair_strips[pair], y, 0.3, LINK_COLOURS, False, tl.t_end)
        ticks.append(y + 0.15)
        names.append(f"{pair[0]}-{pair[1]}")
        y += 0.4
    for lock in reversed(locks):
        _holder_bars(ax, tl.global_lanes[lock], y + 0.05, tl.dcs, tl.t_end)
        ticks.append(y + 0.3)
        names.append(f"global {lock}")
        y += 0.7
    lane_y: dict[str, float] = {}
    for dc in reversed(tl.dcs):
        _bars(ax, tl.lanes[dc], y + 0.1, 0.8, STATE_COLOURS, True, tl.t_end)
        lane_y[dc] = y + 0.5
        ticks.append(y + 0.5)
        names.append(dc + (" (witness)" if dc in tl.witnesses else ""))
        y += 1.0
    last_label = -1.0
    level = 0
    for start, end, desc in tl.faults:
        ax.axvspan(start, end, color="#1f77b4", alpha=0.05)
        level = level + 1 if start - last_label < tl.t_end * 0.06 else 0
        last_label = start
        label_y = y + 0.04 + 0.22 * (level % 4)
        ax.text(start, label_y, desc, fontsize=6, va="bottom", ha="left", color="#1f4f84")
    if tl.quiet_at is not None:
        ax.axvline(tl.quiet_at, color="#1f77b4", linestyle="--", linewidth=0.8)
    for t, _invariant, where, _detail in tl.violations:
        ax.axvline(t, color="red", linewidth=1.0, alpha=0.7)
        if where is not None and where in lane_y:
            ax.plot([t], [lane_y[where]], marker="x", color="red", markersize=10, mew=2)
    ax.set_yticks(ticks)
    ax.set_yticklabels(names, fontsize=8)
    ax.set_xlim(0, tl.t_end)
    ax.set_ylim(0, y + 1.0)
    ax.set_xlabel("seconds")
    handles = [Patch(color=c, label=s) for s, c in STATE_COLOURS.items()]
    handles += [Patch(color=c, label=f"link {s}") for s, c in LINK_COLOURS.items() if s != "up"]
    handles.append(Patch(color="#1f77b4", alpha=0.2, label="fault"))
    if locks:
        held = {seg.state for segs in tl.global_lanes.values() for seg in segs}
        handles += [Patch(color=HOLDER_COLOURS[i % len(HOLDER_COLOURS)], label=f"global held by {dc}")
                    for i, dc in enumerate(tl.dcs) if dc in held]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.12 - 0.3 / max(rows, 1)),
              ncol=len(handles), fontsize=7, frameon=False)
    ax.set_title(f"{_title(tl.meta)}  ({len(tl.violations)} violations)", fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def _title(meta: dict[str, Any]) -> str:
    """"<scenario>  seed N" for the simulator; "<scenario>  (lab)" for a recorded run (no seed)."""
    name = str(meta.get("scenario") or "explore")
    seed = meta.get("seed")
    return f"{name}  seed {seed}" if seed is not None else f"{name}  ({meta.get('source')})"


def _fmt(values: list[float]) -> str:
    if not values:
        return "-"
    return f"max {max(values):.2f}s / mean {mean(values):.2f}s (n={len(values)})"


def _tenures(segments: list[Segment]) -> list[Segment]:
    """Consecutive holdings of one claimant under one term merged (renewals are not rows)."""
    out: list[Segment] = []
    for seg in segments:
        last = out[-1] if out else None
        if last is not None and last.label == seg.label and seg.start <= last.end + 1e-6:
            out[-1] = Segment(last.start, max(last.end, seg.end), last.state, last.label)
        else:
            out.append(seg)
    return out


def render_html(tl: Timeline, png: bytes) -> str:
    esc = html.escape
    rows = []
    for dc in tl.dcs:
        m = tl.metrics[dc]
        fence = _fmt(m.fence_latencies) + (f", {m.unfenced_cuts} never fenced" if m.unfenced_cuts else "")
        rows.append(
            f"<tr><td>{esc(dc)}{' (witness)' if dc in tl.witnesses else ''}</td><td>{esc(fence)}</td>"
            f"<td>{esc(_fmt(m.rejoin_latencies))}</td><td>{m.leader_changes}</td>"
            f"<td class='{'bad' if m.peak_writable > 1 else ''}'>{m.peak_writable}</td>"
            f"<td>{m.writes_accepted}</td><td>{m.writes_rejected}</td></tr>"
        )
    vrows = "".join(
        f"<tr><td>{t:.3f}</td><td>{esc(inv)}</td><td>{esc(dc or '')}</td><td>{esc(detail)}</td></tr>"
        for t, inv, dc, detail in tl.violations
    ) or "<tr><td colspan=4>none: every invariant held</td></tr>"
    frows = "".join(
        f"<tr><td>{s:.3f}</td><td>{e:.3f}</td><td>{esc(d)}</td></tr>" for s, e, d in tl.faults
    ) or "<tr><td colspan=3>no faults</td></tr>"
    grows = "".join(
        f"<tr><td>{esc(lock)}</td><td>{seg.start:.3f}</td><td>{seg.end:.3f}</td><td>{esc(seg.state)}</td>"
        f"<td>{esc(seg.label)}</td></tr>"
        for lock, segs in sorted(tl.global_lanes.items()) for seg in _tenures(segs)
    )
    gtable = ("<h2>Global locks (believed holdings)</h2><table><tr><th>lock</th><th>from</th><th>to</th>"
              f"<th>DC</th><th>holder, term</th></tr>{grows}</table>") if tl.global_lanes else ""
    meta = tl.meta
    clock = "simulated seconds" if meta.get("source") == "sim" else "seconds"
    image = base64.b64encode(png).decode("ascii")
    timers = ", ".join(f"{k}={v:g}" for k, v in (meta.get("timers") or {}).items())
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{esc(_title(meta))}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; }}
td, th {{ border: 1px solid #ccc; padding: 3px 8px; font-size: 13px; text-align: left; }}
th {{ background: #f2f2f2; }} .bad {{ color: #c00; font-weight: bold; }}
img {{ max-width: 100%; border: 1px solid #ddd; }} code {{ background: #f4f4f4; padding: 1px 4px; }}
</style></head><body>
<h1>{esc(_title(meta))}</h1>
<p>{len(tl.dcs)} DCs, {len(tl.violations)} violations, {tl.t_end:.1f} {clock}.
Timers: <code>{esc(timers)}</code></p>
<img alt="timeline" src="data:image/png;base64,{image}">
<h2>Per DC</h2>
<table><tr><th>DC</th><th>fence latency (cut from quorum -> not writable)</th>
<th>rejoin latency (back in quorum -> writable)</th><th>leader changes</th>
<th>peak writable replicas</th><th>writes accepted</th><th>writes rejected (stale token)</th></tr>
{''.join(rows)}</table>
{gtable}
<h2>Violations</h2>
<table><tr><th>t</th><th>invariant</th><th>DC</th><th>detail</th></tr>{vrows}</table>
<h2>Faults</h2>
<table><tr><th>start</th><th>end</th><th>fault</th></tr>{frows}</table>
</body></html>
"""


def write_report(tl: Timeline, out_dir: str, name: str) -> tuple[str, str]:
    """Write `<name>.png` and `<name>.html` into `out_dir`; returns both paths."""
    os.makedirs(out_dir, exist_ok=True)
    png = render_png(tl)
    png_path = os.path.join(out_dir, f"{name}.png")
    html_path = os.path.join(out_dir, f"{name}.html")
    with open(png_path, "wb") as fh:
        fh.write(png)
    with open(html_path, "w", encoding="utf-8") as fh:
        fh.write(render_html(tl, png))
    return html_path, png_path
