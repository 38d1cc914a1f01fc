"""The global lock's per-DC register: key, value codec, timer rules (pure data, no IO).

Every DC's own KV holds, for each configured global lock, ONE register

    coordinator/<cluster>/global/<lock-name>  =  {"holder": str, "term": int, "seq": int}

``holder`` is the claimant's identity ("<dc>/<replica-id>/<session-id>": unique per DC
leadership, so a new leader of the same DC is a different claimant), ``""`` once released;
``term`` is the fencing token of the tenure that last wrote it; ``seq`` only makes each
renewal a different value (Consul bumps ModifyIndex on every write anyway).

Invariant kept by every writer (coordinator.core.globallock): a register's term never
decreases. A write carries the writer's term T and is a CAS on the ModifyIndex the writer
read, and T is either equal to the term it read with the writer itself as holder (a
renewal or a release), or strictly greater (an acquisition).

Timer rule (docs/safety.md, "Global lock"): with every clock's RATE within ``1 +- rho`` of
real time, a contender that waits ``lease + margin`` on its own clock outlasts a holder's
``lease`` on the holder's clock iff ``margin >= 2 * rho * lease / (1 - rho)``, i.e. the
tolerated drift is ``rho_max = margin / (2 * lease + margin)``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from coordinator.core.topology import GlobalLockSpec, Timers


@dataclass(frozen=True)
class Register:
    holder: str
    term: int
    seq: int = 0

    @property
    def free(self) -> bool:
        """Released (or never claimed): any contender may take it at once."""
        return self.holder == ""


def register_key(cluster: str, name: str) -> str:
    return f"coordinator/{cluster}/global/{name}"


def encode_register(reg: Register) -> bytes:
    return json.dumps({"holder": reg.holder, "term": reg.term, "seq": reg.seq}, sort_keys=True).encode()


UNREADABLE = Register(holder="?unreadable", term=0)
"""What a register that does not decode reads as: held by an unknown claimant (so it is
taken only after lease + margin unchanged) with term 0 (a hand-written value cannot push
terms backwards: the next acquirer still picks 1 + the max of the majority it read)."""


def decode_register(raw: bytes | None) -> Register:
    """Decode a register value; anything malformed is `UNREADABLE` (never raises)."""
    if raw is None:
        return UNREADABLE
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return UNREADABLE
    if not isinstance(obj, dict):
        return UNREADABLE
    holder, term, seq = obj.get("holder"), obj.get("term"), obj.get("seq", 0)
    if not isinstance(holder, str) or type(term) is not int or type(seq) is not int or term < 0:
        return UNREADABLE
    return Register(holder, term, seq)


def tolerated_drift(spec: GlobalLockSpec) -> float:
    """Largest clock-rate drift rho (fraction) the spec's margin covers."""
    return spec.margin / (2 * spec.lease + spec.margin)


def required_margin(lease: float, rho: float) -> float:
    """Smallest margin that covers rate drift `rho` for `lease`."""
    return 2 * rho * lease / (1 - rho)


def check_spec(spec: GlobalLockSpec, timers: Timers) -> list[str]:
    """Problems with a lock's timers (empty = fine). The config layer reports them with
    file:line; the core refuses to build a lock whose spec has problems.
    """
    out: list[str] = []
    if not spec.name or "/" in spec.name or spec.name.strip() != spec.name:
        out.append(f"global lock name {spec.name!r} must be non-empty, without '/' or outer spaces")
    for field_name in ("lease", "margin", "renew_interval", "request_timeout"):
        if getattr(spec, field_name) <= 0:
            out.append(f"{field_name} must be > 0")
    if out:
        return out
    if spec.request_timeout >= spec.renew_interval:
        out.append("request_timeout must be < renew_interval (rounds never overlap)")
    if 2 * spec.renew_interval + spec.request_timeout >= spec.lease:
        out.append("lease must exceed 2 x renew_interval + request_timeout (one lost renewal is survived)")
    need = required_margin(spec.lease, timers.max_drift)
    if spec.margin < need:
        out.append(
            f"margin {spec.margin:g}s is below {need:.3f}s = 2 x max_drift x lease / (1 - max_drift)"
        )
    return out
