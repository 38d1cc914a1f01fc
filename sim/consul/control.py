"""Fault control outside Consul's namespace, served by every DC's port.

- `PUT /_emulator/link/<from>/<to>?state=down|up`: one-directional cut of requests
  forwarded from `from` to `to`. Any port accepts any in-process pair; when `from` lives in
  a peer process the call is relayed to that peer.
- `PUT /_emulator/heal`: every link up and every leader back (relayed to peers unless
  `?local` is given).
- `PUT /_emulator/leader?state=down|up[&dc=X]`: leader loss/regain of this DC (or X).
- `GET /_emulator/state`: links, leader and index per DC.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

from aiohttp import ClientError, ClientTimeout

from sim.consul.http_types import Reply, Request, text_reply

if TYPE_CHECKING:
    from sim.consul.server import DcHost, Emulator


def _text(status: int, text: str) -> Reply:
    return text_reply(status, text)


class Control:
    def __init__(self, em: Emulator) -> None:
        self.em = em

    def _json(self) -> Reply:
        return Reply(200, {"Content-Type": "application/json"}, json.dumps(self.em.state()).encode())

    async def handle(self, host: DcHost, request: Request) -> Reply:
        parts = [p for p in request.path.split("/") if p][1:]
        if request.method == "GET" and parts == ["state"]:
            return self._json()
        if request.method != "PUT":
            return _text(405, "use PUT")
        if parts and parts[0] == "link" and len(parts) == 3:
            return await self._link(parts[1], parts[2], request)
        if parts == ["heal"]:
            return await self._heal(request)
        if parts == ["leader"]:
            return self._leader(host, request)
        return _text(404, "unknown emulator control endpoint")

    async def _link(self, src: str, dst: str, request: Request) -> Reply:
        state = request.param("state") or ""
        if state not in ("up", "down"):
            return _text(400, "state must be up or down")
        em = self.em
        if not em.federation.knows(src) or not em.federation.knows(dst):
            return _text(404, f"unknown datacenter in link {src}->{dst}")
        if src not in em.hosts:
            return await self._relay(em.config.peers[src], request)
        em.federation.set_link(src, dst, state == "up", time.monotonic())
        em.notify_links()
        return self._json()

    async def _heal(self, request: Request) -> Reply:
        em = self.em
        em.federation.heal()
        em.notify_links()
        for host in em.hosts.values():
            before = host.dc.version
            host.dc.set_leader(True, time.monotonic())
            if host.dc.version != before:
                host.notify()
        if not request.has("local"):
            for url in em.config.peers.values():
                await self._relay(url, request, local=True)
        return self._json()

    def _leader(self, host: DcHost, request: Request) -> Reply:
        state = request.param("state") or ""
        if state not in ("up", "down"):
            return _text(400, "state must be up or down")
        name = request.param("dc") or host.dc.name
        target = self.em.hosts.get(name)
        if target is None:
            return _text(404, f"datacenter {name} is not in this process")
        target.dc.set_leader(state == "up", time.monotonic())
        target.notify()
        return self._json()

    async def _relay(self, base: str, request: Request, local: bool = False) -> Reply:
        client = self.em._client
        assert client is not None
        params = dict(request.query)
        if local:
            params["local"] = ""
        try:
            async with client.put(base + request.path, params=params,
                                  timeout=ClientTimeout(total=self.em.config.forward_timeout)) as resp:
                body = await resp.read()
                return Reply(resp.status, {"Content-Type": resp.content_type or "application/json"}, body)
        except (TimeoutError, ClientError) as err:
            return _text(502, f"peer {base} unreachable: {err}")
