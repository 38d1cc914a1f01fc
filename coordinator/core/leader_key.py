"""The value of the DC leader key (`coordinator/<cluster>/dc/<dc>/leader`): who leads, and
where its API listens. Written by the replica that acquires the key; read by every
replica's watch and by clients that look for the leader. A value we cannot read names
no leader (unknown means no)."""

from __future__ import annotations

import json


def leader_value(replica_id: str, api_address: str | None) -> bytes:
    """The leader key's value: who leads, and where its API listens."""
    doc: dict[str, str] = {"id": replica_id}
    if api_address:
        doc["api"] = api_address
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


def leader_id_of(value: bytes | None) -> str | None:
    """The replica id in a leader key value, or None if it is not ours to read."""
    if not value:
        return None
    try:
        doc = json.loads(value)
    except ValueError:
        return None
    ident = doc.get("id") if isinstance(doc, dict) else None
    return ident if isinstance(ident, str) else None
