"""Turn the core's plain dataclasses (StatusSnapshot and friends) into JSON-ready values.

Rules: dataclasses become objects (field order kept), enums their ``value``, tuples, lists,
sets and frozensets become arrays (sets sorted), mapping keys become strings (tuple keys
are joined with "->", e.g. a directed link ("dc1", "dc2") becomes "dc1->dc2"), non-finite
floats become null. Anything else falls back to ``str``. Pure and total: never raises.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Mapping
from typing import Any


def _key(key: object) -> str:
    if isinstance(key, enum.Enum):
        return str(key.value)
    if isinstance(key, tuple):
        return "->".join(_key(part) for part in key)
    return str(key)


def to_jsonable(obj: object) -> Any:
    if obj is None or isinstance(obj, bool | int | str):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, enum.Enum):
        return to_jsonable(obj.value)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {_key(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, set | frozenset):
        return sorted((to_jsonable(v) for v in obj), key=repr)
    if isinstance(obj, tuple | list):
        return [to_jsonable(v) for v in obj]
    return str(obj)
