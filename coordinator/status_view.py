"""Render the JSON of GET /v1/status as a readable text table (`coordinator status`).

Pure: takes the decoded JSON (a dict) and returns text ending with a newline. It reads the
snapshot defensively: a missing field prints as "-", an unknown shape is skipped, so an
older or newer daemon never makes the CLI fail.

Layout::

    cluster demo  dc dc1  replica host-123  role leader  leader host-123
    state   writable  reason -  token 42  lease 1.234s
    quorum  dc1 dc2 dc3  (clique weighs 3 of 3 (> half))

    peers      two-way  rtt_ms    wan      takeover_in
      dc2      up       10.020    alive    -

    links (row = from, column = to; + up, . down, ? unknown)
            dc1  dc2  dc3
      dc1    -    +    +
      ...

    recent transitions (newest last)
      12.345  fenced -> catching-up  quorum-confirmed
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

TRANSITIONS_SHOWN = 10


def _get(obj: Any, *names: str) -> Any:
    if isinstance(obj, Mapping):
        for name in names:
            if name in obj and obj[name] is not None:
                return obj[name]
    return None


def _text(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, list | tuple):
        return " ".join(_text(v) for v in value) or "-"
    return str(value)


def _link_map(status: Mapping[str, Any]) -> dict[tuple[str, str], bool | None]:
    """Directed links from the snapshot: {"dc1->dc2": true} or {"dc1": {"dc2": true}} forms."""
    raw = _get(status, "directed", "matrix", "directed_matrix")
    raw = _get(raw, "directed", "links") or raw
    links: dict[tuple[str, str], bool | None] = {}
    if isinstance(raw, Mapping):
        for key, value in raw.items():
            if isinstance(value, Mapping):
                for dst, up in value.items():
                    links[(str(key), str(dst))] = up if isinstance(up, bool) else None
            elif isinstance(key, str) and "->" in key:
                src, _, dst = key.partition("->")
                links[(src, dst)] = value if isinstance(value, bool) else None
    elif isinstance(raw, list):
        for item in raw:
            src, dst = _get(item, "src", "from_dc", "source"), _get(item, "dst", "to_dc", "target")
            up = _get(item, "up", "ok")
            if src is not None and dst is not None:
                links[(str(src), str(dst))] = up if isinstance(up, bool) else None
    return links


def _dc_names(status: Mapping[str, Any], links: Iterable[tuple[str, str]]) -> list[str]:
    names: list[str] = []
    for pair in links:
        for name in pair:
            if name not in names:
                names.append(name)
    return sorted(names)


def _matrix(status: Mapping[str, Any]) -> list[str]:
    links = _link_map(status)
    if not links:
        return []
    names = _dc_names(status, links)
    width = max(4, *(len(n) for n in names)) + 1
    lines = ["links (row = from, column = to; + up, . down, ? unknown)"]
    lines.append(" " * (width + 2) + "".join(n.rjust(width) for n in names))
    for src in names:
        cells = []
        for dst in names:
            if src == dst:
                cells.append("-")
            else:
                up = links.get((src, dst))
                cells.append("?" if up is None else "+" if up else ".")
        lines.append("  " + src.ljust(width) + "".join(c.rjust(width) for c in cells))
    return lines


def _transitions(status: Mapping[str, Any]) -> list[str]:
    items = _get(status, "transitions")
    if not isinstance(items, list) or not items:
        return []
    lines = ["recent transitions (monotonic seconds, newest last)"]
    for item in items[-TRANSITIONS_SHOWN:]:
        at = _get(item, "at", "time", "t")
        src = _get(item, "from_state", "from", "src")
        dst = _get(item, "to_state", "to", "dst")
        reason = _get(item, "reason")
        at_text = f"{at:12.3f}" if isinstance(at, int | float) else _text(at).rjust(12)
        lines.append(f"  {at_text}  {_text(src)} -> {_text(dst)}  {_text(reason)}")
    return lines


WAN_STATUS = {0: "none", 1: "alive", 2: "leaving", 3: "left", 4: "failed"}


def _peers(status: Mapping[str, Any]) -> list[str]:
    """One row per other DC: two-way link, RTT, WAN gossip status, takeover countdown."""
    me = _get(status, "dc")
    undirected = _get(status, "undirected")
    mine = _get(undirected, me) if isinstance(me, str) else None
    rtt = _get(status, "rtt_ms")
    takeover = _get(status, "takeover_in")
    wan: dict[str, str] = {}
    members = _get(status, "wan_members")
    for member in members if isinstance(members, list) else []:
        dc, code = _get(member, "dc"), _get(member, "status")
        if isinstance(dc, str) and dc not in wan:
            wan[dc] = WAN_STATUS.get(code, _text(code)) if isinstance(code, int) else _text(code)
    names: set[str] = set(wan)
    for table in (mine, rtt, takeover):
        if isinstance(table, Mapping):
            names.update(str(k) for k in table)
    names.discard(str(me))
    if not names:
        return []
    lines = ["peers      two-way  rtt_ms    wan      takeover_in"]
    for dc in sorted(names):
        link = _get(mine, dc)
        two_way = "?" if not isinstance(link, bool) else "up" if link else "down"
        ms = _get(rtt, dc)
        left = _get(takeover, dc)
        lines.append(
            f"  {dc:<9}{two_way:<9}{_text(ms):<10}{wan.get(dc, '-'):<9}"
            + (f"{left:.1f}s" if isinstance(left, int | float) else "-")
        )
    return lines


def render_status(status: Mapping[str, Any]) -> str:
    """The whole table; see the module docstring for the layout."""
    lease = _get(status, "lease_remaining")
    quorum = _get(status, "quorum")
    members = _get(quorum, "members") if isinstance(quorum, Mapping) else quorum
    flags = [name for name in ("admin_fenced", "witness") if _get(status, name) is True]
    sources = _get(status, "admin_fence")
    if "admin_fenced" in flags and isinstance(sources, list | tuple) and sources:
        flags[0] = f"admin_fenced({','.join(str(x) for x in sources)})"
    head = [
        f"cluster {_text(_get(status, 'cluster'))}  dc {_text(_get(status, 'dc'))}  "
        f"replica {_text(_get(status, 'replica_id'))}  role {_text(_get(status, 'role'))}  "
        f"leader {_text(_get(status, 'leader'))}",
        f"state   {_text(_get(status, 'dc_state'))}  reason {_text(_get(status, 'reason'))}  "
        f"token {_text(_get(status, 'token'))}  lease {_text(lease)}s"
        + (f"  [{' '.join(flags)}]" if flags else ""),
        f"quorum  {_text(members)}" + (f"  ({_get(quorum, 'reason')})" if _get(quorum, "reason") else ""),
    ]
    error = _get(status, "consul_error")
    if error:
        head.append(f"consul  {error}")
    sections = [head, _peers(status), _matrix(status), _transitions(status)]
    return "\n\n".join("\n".join(s) for s in sections if s) + "\n"
