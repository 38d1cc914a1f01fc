"""The `global_locks` section of topology.yaml: lock name -> timers (docs/global-lock.md).

    global_locks:
      email-sender:            # {} or null: all defaults
        lease: 3s
        margin: 500ms
        renew_interval: 500ms
        request_timeout: 400ms

Every problem is reported at its line (like the rest of coordinator.config); the timer
rules are coordinator.core.global_register.check_spec, reported at the lock's name.
"""

from __future__ import annotations

import re
from dataclasses import fields
from typing import TYPE_CHECKING

from coordinator.config.nodes import Entry, join
from coordinator.core.global_register import check_spec
from coordinator.core.topology import GlobalLockSpec, Timers

if TYPE_CHECKING:
    from coordinator.config.schema import _Reader

LOCK_KEYS = tuple(f.name for f in fields(GlobalLockSpec) if f.name != "name")
LOCK_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
"""One KV path segment, like the cluster name."""


def read_global_locks(
    reader: _Reader, entry: Entry, timers: Timers | None
) -> tuple[GlobalLockSpec, ...] | None:
    """The locks, or None after reporting problems to `reader.sink`. Null means none."""
    locks = reader.named(
        entry, "global_locks", "lock name -> timers", lambda item: _lock(reader, item, timers)
    )
    return None if locks is None else tuple(locks)


def _lock(reader: _Reader, item: Entry, timers: Timers | None) -> GlobalLockSpec | None:
    path = join("global_locks", item.key)
    bad_name = (
        None
        if LOCK_NAME.fullmatch(item.key)
        else f"{item.key!r} is not a valid lock name (letters, digits, '.', '_', '-'; no '/')"
    )
    spec = reader.named_spec(
        item, path, bad_name, LOCK_KEYS, "e.g. {lease: 3s, margin: 500ms}, or empty for defaults"
    )
    if spec is None:
        return None
    values: dict[str, float] = {}
    for key, sub in spec.items():
        value = reader.timer_value(sub, join(path, key), fraction=False)
        if value is None:
            return None
        values[key] = value
    lock = GlobalLockSpec(name=item.key, **values)
    if timers is not None:
        for problem in check_spec(lock, timers):
            reader.sink.error(item.key_node, path, problem)
        if reader.sink.errors:
            return None
    return lock
