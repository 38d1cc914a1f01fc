"""The tiny asyncio adapter: sends a sansio `Request` with httpx, returns a `Response`.

`AsyncConsul.send` is the one place transport failures become ConsulErrors:
httpx timeouts (connect/read/write/pool) and our whole-exchange deadline -> ConsulTimeout;
every other httpx transport error (refused, reset, DNS, TLS, protocol) -> ConsulUnreachable.
HTTP statuses are NOT checked here: the parsers do that. The convenience methods
(`kv_get`, `session_renew`, ...) are exactly builder + send + parser, same arguments as the
builders.

The ACL token is sent as `X-Consul-Token` on every request and never appears in an error
message or repr. Proxies from the environment are ignored (trust_env=False): the agent is local.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, TypeVar
from urllib.parse import quote

import httpx

from coordinator.consul import builders as b
from coordinator.consul import parsing as p
from coordinator.consul.config import ConsulConfig
from coordinator.consul.errors import ConsulTimeout, ConsulUnreachable
from coordinator.consul.wire import Request, Response

DEFAULT_TIMEOUT = 10.0
"""Seconds for a request whose `Request.timeout` is None."""
DEFAULT_LIMITS = httpx.Limits(max_connections=32, max_keepalive_connections=8, keepalive_expiry=30.0)
"""A daemon does a few requests per second plus a handful of long-lived blocking queries."""

P = ParamSpec("P")
T = TypeVar("T")


def render_query(params: tuple[tuple[str, str], ...]) -> str:
    """Query string without the "?": a flag ("recurse", "") renders as the bare name."""
    return "&".join(k if v == "" else f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in params)


def _op(
    build: Callable[P, Request], parse: Callable[[Response], T]
) -> Callable[Concatenate[AsyncConsul, P], Coroutine[Any, Any, T]]:
    """A method that builds the request, sends it and parses the answer."""

    async def method(self: AsyncConsul, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return parse(await self.send(build(*args, **kwargs)))

    method.__name__ = build.__name__
    method.__doc__ = build.__doc__
    return method


class AsyncConsul:
    """Async client of one Consul agent. Use as `async with AsyncConsul(cfg) as c:` or call
    `aclose()`. `transport` replaces the network (tests pass httpx.MockTransport); then the
    TLS settings of `config` are not used.
    """

    def __init__(
        self,
        config: ConsulConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        default_timeout: float = DEFAULT_TIMEOUT,
        limits: httpx.Limits = DEFAULT_LIMITS,
    ) -> None:
        self._config = config
        self._default_timeout = default_timeout
        if transport is None:
            verify = config.ssl_context() if config.is_https else True
            transport = httpx.AsyncHTTPTransport(verify=verify, uds=config.uds, limits=limits, retries=0)
        headers = {"X-Consul-Token": config.token} if config.token else {}
        self._extensions: dict[str, Any] = {}
        if config.tls_server_name:
            self._extensions["sni_hostname"] = config.tls_server_name
        self._http = httpx.AsyncClient(
            base_url=config.address,
            transport=transport,
            headers=headers,
            timeout=default_timeout,
            trust_env=False,
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"AsyncConsul({self._config!r})"

    async def __aenter__(self) -> AsyncConsul:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def _scrub(self, text: str) -> str:
        token = self._config.token
        return text.replace(token, "***") if token else text

    async def send(self, req: Request) -> Response:
        """Send `req`; the whole exchange is bounded by `req.timeout` (or the default).

        Returns any HTTP response as a Response (header names lower-cased). Raises
        ConsulTimeout or ConsulUnreachable; cancellation propagates unchanged.
        """
        timeout = self._default_timeout if req.timeout is None else req.timeout
        url = req.path + ("?" + render_query(req.params) if req.params else "")
        where = f"{req.method} {req.path}"
        try:
            async with asyncio.timeout(timeout):
                resp = await self._http.request(
                    req.method,
                    url,
                    content=req.body,
                    timeout=timeout,
                    extensions=self._extensions or None,
                )
        except (httpx.TimeoutException, TimeoutError) as exc:
            raise ConsulTimeout(self._scrub(f"{where}: no answer within {timeout:g}s")) from exc
        except httpx.TransportError as exc:
            detail = self._scrub(f"{type(exc).__name__}: {exc}")
            raise ConsulUnreachable(f"{where}: {detail}") from exc
        headers = {k.lower(): v for k, v in resp.headers.items()}
        return Response(resp.status_code, headers, resp.content)

    # Convenience methods: builder + send + parser, with the builder's arguments.
    kv_get = _op(b.kv_get, p.parse_kv_get)
    kv_keys = _op(b.kv_keys, p.parse_kv_keys)
    kv_put = _op(b.kv_put, p.parse_kv_put)
    kv_delete = _op(b.kv_delete, p.parse_kv_delete)
    session_create = _op(b.session_create, p.parse_session_create)
    session_renew = _op(b.session_renew, p.parse_session_renew)
    session_destroy = _op(b.session_destroy, p.parse_session_destroy)
    session_info = _op(b.session_info, p.parse_session_info)
    txn = _op(b.txn, p.parse_txn)
    agent_self = _op(b.agent_self, p.parse_agent_self)
    agent_check_register = _op(b.agent_check_register, p.parse_agent_ok)
    agent_check_pass = _op(b.agent_check_pass, p.parse_agent_ok)
    agent_check_warn = _op(b.agent_check_warn, p.parse_agent_ok)
    agent_check_fail = _op(b.agent_check_fail, p.parse_agent_ok)
    agent_check_deregister = _op(b.agent_check_deregister, p.parse_agent_ok)
    agent_members = _op(b.agent_members, p.parse_agent_members)
    catalog_datacenters = _op(b.catalog_datacenters, p.parse_catalog_datacenters)
    coordinate_datacenters = _op(b.coordinate_datacenters, p.parse_coordinate_datacenters)
    status_leader = _op(b.status_leader, p.parse_status_leader)
