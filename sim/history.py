"""The history schema: what happened in a run, as JSON lines (one event per line).

Shared by the simulator (sim.world writes it) and the real-process partition lab (which
records the same kinds from processes and iptables), so that sim.checker and sim.report
work on both. Every event is one JSON object with at least

    {"t": <seconds, monotonic, float>, "kind": <one of KINDS>}

Kinds and their fields (all required unless marked optional):

- ``meta``: ``topology`` (mapping: cluster, datacenters [{name, weight, witness}],
  tie_breaker), ``timers`` (mapping of Timers fields), ``seed`` (int or null),
  ``source`` ("sim" or "lab"), optional ``scenario`` (name), ``replicas`` ({dc: count}).
  Exactly one, first.
- ``replica``: ``dc``, ``replica``, ``role`` ("leader" | "follower" | "down" | "paused"),
  ``state`` (one of REPLICA_STATES), ``allowed`` (bool: may-write answers yes),
  ``token`` (int or null; set iff allowed), ``reason`` (may-write reason or null).
  Emitted whenever any of those fields changes for that replica.
- ``fault``: ``phase`` ("start" | "end"), ``id`` (int, pairs start and end),
  ``fault`` (kind name), ``description``, ``dcs`` (affected DC names),
  ``links`` (affected directed links as [from, to] pairs).
- ``link``: ``from``, ``to``, ``up`` (bool): the ground-truth state of one DIRECTED link.
  Optional ``delay`` (s), ``loss`` (fraction) when degraded.
- ``consul``: ``dc``, ``leader`` (bool): the DC's Consul cluster has a Raft leader.
- ``write``: ``dc``, ``replica``, ``token``, ``accepted`` (bool): a write carrying
  ``token`` reached the DC's protected resource.
- ``global``: ``lock`` (global lock name), ``dc``, ``replica``, ``holder`` (the claimant:
  one incarnation of a replica), ``term`` (int or null), ``until`` (virtual seconds or
  null): from ``t`` on, that claimant believes it holds ``lock`` under ``term`` until
  ``until`` (its own clock's verdict mapped to virtual time); null = it does not hold.
  Emitted whenever that belief changes (simulator only).
- ``quiet``: no fault is active or will be injected from here on (liveness checks start).
- ``violation``: ``invariant``, ``detail``, optional ``dc``.
- ``end``: the run ended at ``t``.

Invariants of a well-formed history: ``t`` never decreases; ``meta`` comes first; every
DC and replica named appears in ``meta.topology``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict
from typing import IO, Any

from coordinator.core.topology import DcSpec, Timers, Topology

KINDS = ("meta", "replica", "fault", "link", "consul", "write", "global", "quiet", "violation", "end")
ROLES = ("leader", "follower", "down", "paused")
REPLICA_STATES = ("writable", "fenced", "catching-up", "starting", "down", "paused")
"""Display states: writable (allowed), catching-up, fenced (any other no), starting,
down (crashed or not running), paused (stopped, e.g. SIGSTOP / long GC)."""

Event = dict[str, Any]
"""One history event: a JSON object with "t" and "kind"."""


def topology_to_json(topo: Topology) -> dict[str, Any]:
    """The parts of a Topology the checker and the renderer need."""
    return {
        "cluster": topo.cluster,
        "datacenters": [{"name": d.name, "weight": d.weight, "witness": d.witness} for d in topo.datacenters],
        "tie_breaker": topo.tie_breaker,
    }


def topology_from_json(data: Mapping[str, Any], timers: Mapping[str, Any] | None = None) -> Topology:
    dcs = tuple(
        DcSpec(name=str(d["name"]), weight=int(d.get("weight", 1)), witness=bool(d.get("witness", False)))
        for d in data["datacenters"]
    )
    return Topology(
        cluster=str(data.get("cluster", "sim")),
        datacenters=dcs,
        timers=Timers(**dict(timers or {})),
        tie_breaker=data.get("tie_breaker"),
    )


def meta_event(
    topo: Topology,
    seed: int | None,
    source: str,
    replicas: Mapping[str, int],
    scenario: str | None = None,
) -> Event:
    return {
        "t": 0.0,
        "kind": "meta",
        "topology": topology_to_json(topo),
        "timers": asdict(topo.timers),
        "seed": seed,
        "source": source,
        "scenario": scenario,
        "replicas": dict(replicas),
    }


def dumps(event: Event) -> str:
    """One event as its canonical JSON line (sorted keys, no spaces, times rounded to 1 us).

    Rounding makes logs stable across float formatting; the canonical form is what the
    "same seed -> byte-identical log" guarantee is about.
    """
    out = dict(event)
    out["t"] = round(float(out["t"]), 6)
    return json.dumps(out, sort_keys=True, separators=(",", ":"))


def write_jsonl(events: Iterable[Event], fh: IO[str]) -> None:
    for event in events:
        fh.write(dumps(event))
        fh.write("\n")


class HistoryError(ValueError):
    """A history line is not a well-formed event ("<source>:<line>: <message>")."""


def read_jsonl(lines: Iterable[str], source: str = "<history>") -> Iterator[Event]:
    """Parse and minimally validate JSON lines; blank lines are skipped."""
    last_t = float("-inf")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError as exc:
            raise HistoryError(f"{source}:{number}: not JSON: {exc.msg}") from None
        if not isinstance(event, dict) or "t" not in event or event.get("kind") not in KINDS:
            raise HistoryError(f"{source}:{number}: needs a 't' and a 'kind' in {', '.join(KINDS)}")
        if float(event["t"]) < last_t:
            raise HistoryError(f"{source}:{number}: time goes backwards ({event['t']} < {last_t})")
        last_t = float(event["t"])
        yield event


def load(path: str) -> list[Event]:
    with open(path, encoding="utf-8") as fh:
        return list(read_jsonl(fh, path))
