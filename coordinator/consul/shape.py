"""Shape checking shared by the parsers, and the one HTTP-status-to-error translation.

`raise_for_status` maps statuses and Consul's error texts to coordinator.consul.errors;
the typed accessors (`get_uint`, `as_list`, ...) raise MalformedResponse on any shape they
do not expect; `shape_guard` turns any remaining stray exception of a parser into
MalformedResponse, so parsers raise nothing but ConsulError.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping
from typing import Any, ParamSpec, TypeVar

from coordinator.consul import errors as e
from coordinator.consul.wire import Response

P = ParamSpec("P")
T = TypeVar("T")

UINT = re.compile(r"[0-9]{1,20}")

# Consul's 5xx texts (agent/structs/errors.go, state/kvs.go, session_endpoint.go), matched
# case-insensitively as substrings, first match wins.
_SERVER_TEXTS: tuple[tuple[str, type[e.ConsulError]], ...] = (
    ("no path to datacenter", e.NoPathToDatacenter),
    ("remote dc has no server currently reachable", e.RemoteDcUnreachable),
    ("no cluster leader", e.NoClusterLeader),
    ("not ready to serve consistent reads", e.NoClusterLeader),
    ("invalid session ttl", e.BadRequest),
    ("invalid session", e.InvalidSession),
    ("missing session", e.InvalidSession),
    ("acl not found", e.AclDenied),
    ("permission denied", e.AclDenied),
    ("rate limit", e.RateLimited),
    ("missing node registration", e.SessionRejected),
    ("missing check", e.SessionRejected),
    ("in critical state", e.SessionRejected),
    ("invalid behavior", e.BadRequest),
)


def body_text(resp: Response) -> str:
    return resp.body.decode("utf-8", "replace").strip()


def malformed(resp: Response, what: str) -> e.MalformedResponse:
    text = body_text(resp)
    return e.MalformedResponse(f"malformed Consul response: {what}", status=resp.status, detail=text)


_SHAPE_ERRORS = (ValueError, TypeError, KeyError, IndexError, AttributeError, ArithmeticError, RecursionError)


def shape_guard(fn: Callable[P, T]) -> Callable[P, T]:
    """Last line of the 'only ConsulError escapes' contract: any stray shape error becomes
    MalformedResponse (the typed accessors below are the first line)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return fn(*args, **kwargs)
        except e.ConsulError:
            raise
        except _SHAPE_ERRORS as exc:
            raise e.MalformedResponse(f"malformed Consul response: {type(exc).__name__}") from exc

    return wrapper


def raise_for_status(resp: Response) -> None:
    """Return if `resp` is a 2xx; otherwise raise the matching ConsulError.

    404 -> NotFound, 403 -> AclDenied, 429 -> RateLimited, other 4xx -> BadRequest,
    5xx -> by Consul's error text (see `_SERVER_TEXTS`), else ConsulServerError;
    any other status (1xx, 3xx, nonsense) -> MalformedResponse. Endpoints where 404 or 409
    is a normal answer handle it before calling this.
    """
    status = resp.status
    if 200 <= status < 300:
        return
    text = body_text(resp)
    if status == 404:
        raise e.NotFound(f"Consul: not found: {text[:120]}", status=status, detail=text)
    if status == 403:
        raise e.AclDenied(f"Consul: ACL denied: {text[:120]}", status=status, detail=text)
    if status == 429:
        raise e.RateLimited(f"Consul: rate limited: {text[:120]}", status=status, detail=text)
    if 400 <= status < 500:
        raise e.BadRequest(f"Consul refused the request: {text[:120]}", status=status, detail=text)
    if 500 <= status < 600:
        lowered = text.lower()
        for needle, cls in _SERVER_TEXTS:
            if needle in lowered:
                raise cls(f"Consul: {text[:160]}", status=status, detail=text)
        raise e.ConsulServerError(f"Consul server error: {text[:160]}", status=status, detail=text)
    raise malformed(resp, f"unexpected HTTP status {status}")


def load_json(resp: Response) -> Any:
    try:
        return json.loads(resp.body)
    except (ValueError, RecursionError) as exc:
        raise malformed(resp, "body is not JSON") from exc


def get_field(obj: Mapping[str, Any], name: str, kind: type, default: Any, resp: Response) -> Any:
    value = obj.get(name, default)
    if value is None:
        value = default
    if isinstance(value, bool) and kind is int:
        raise malformed(resp, f"{name} is a bool, not an integer")
    if not isinstance(value, kind):
        raise malformed(resp, f"{name} has type {type(value).__name__}")
    return value


def get_uint(obj: Mapping[str, Any], name: str, resp: Response, default: int = 0) -> int:
    value: int = get_field(obj, name, int, default, resp)
    if value < 0:
        raise malformed(resp, f"{name} is negative")
    return value


def get_str(obj: Mapping[str, Any], name: str, resp: Response, default: str = "") -> str:
    value: str = get_field(obj, name, str, default, resp)
    return value


def get_float(obj: Mapping[str, Any], name: str, resp: Response) -> float:
    value = obj.get(name, 0.0)
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise malformed(resp, f"{name} is not a number")
    return float(value)


def as_dict(value: Any, what: str, resp: Response) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise malformed(resp, f"{what} is not an object")
    return value


def as_list(value: Any, what: str, resp: Response, *, null_ok: bool = False) -> list[Any]:
    if value is None and null_ok:
        return []
    if not isinstance(value, list):
        raise malformed(resp, f"{what} is not an array")
    return value


def as_str_list(value: Any, what: str, resp: Response) -> tuple[str, ...]:
    items = as_list(value, what, resp, null_ok=True)
    if not all(isinstance(x, str) for x in items):
        raise malformed(resp, f"{what} holds a non-string")
    return tuple(items)


def bool_body(resp: Response) -> bool:
    raise_for_status(resp)
    value = load_json(resp)
    if not isinstance(value, bool):
        raise malformed(resp, "expected true or false")
    return value


def header(resp: Response, name: str) -> str | None:
    value = resp.headers.get(name)
    if value is not None:
        return value
    for key, val in resp.headers.items():
        if key.lower() == name:
            return val
    return None
