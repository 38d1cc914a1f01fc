"""A hand-driven shell for ReplicaCore unit tests (no test functions here).

`Driver` records the commands a core emits, lets a test answer a pending request of a
given kind with a hand-written `Response` (or an exception), and offers helpers that walk
a core through the happy path step by step. Kinds are the core's tag prefixes
("lock.acquire", "round.txn", ...).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

from coordinator.consul.sansio import Request, Response
from coordinator.core.protocol import CancelRequest, Command, HookResult, RunHook, SendRequest
from coordinator.core.replica import ReplicaCore
from coordinator.core.rows import ReachEntry, Row, encode_row
from coordinator.core.topology import CatchUp, DcSpec, Topology

SID = "11111111-2222-3333-4444-555555555555"
OTHER_SID = "99999999-2222-3333-4444-555555555555"


def topo(
    *,
    witness: str | None = None,
    catch_up: CatchUp | None = None,
    dcs: tuple[str, ...] = ("dc1", "dc2", "dc3"),
) -> Topology:
    return Topology(
        "c1",
        tuple(DcSpec(d, witness=(d == witness)) for d in dcs),
        catch_up=catch_up or CatchUp(),
    )


def ok(body: Any, index: int = 10) -> Response:
    return Response(
        200, {"x-consul-index": str(index), "x-consul-knownleader": "true"}, json.dumps(body).encode()
    )


def text(status: int, msg: str) -> Response:
    return Response(status, {}, msg.encode())


def entry(key: str, value: bytes | None, *, modify: int = 5, session: str | None = None) -> dict[str, Any]:
    d: dict[str, Any] = {
        "Key": key,
        "Value": base64.b64encode(value).decode() if value is not None else None,
        "Flags": 0,
        "CreateIndex": 1,
        "ModifyIndex": modify,
        "LockIndex": 1 if session else 0,
    }
    if session:
        d["Session"] = session
    return d


def txn_ok(*entries: dict[str, Any]) -> Response:
    return ok({"Results": [{"KV": e} for e in entries], "Errors": None})


def txn_rolled_back(op: int, what: str = "failed") -> Response:
    body = {"Results": None, "Errors": [{"OpIndex": op, "What": what}]}
    return Response(409, {}, json.dumps(body).encode())


def peer_row(dc: str, seq: int, peers: tuple[str, ...], *, state: str = "writable") -> Response:
    reach = {p: ReachEntry(ok=True, age=0.1) for p in peers if p != dc}
    row = Row(dc=dc, leader=f"{dc}-leader/x", seq=seq, reach=reach, state=state)
    return ok([entry(f"c1/dc/{dc}/row", encode_row(row), modify=seq + 100)])


@dataclass
class Driver:
    core: ReplicaCore
    now: float = 0.0
    pending: dict[str, Request] = field(default_factory=dict)
    hooks: list[RunHook] = field(default_factory=list)
    log: list[Command] = field(default_factory=list)

    def feed(self, cmds: list[Command]) -> list[Command]:
        for cmd in cmds:
            self.log.append(cmd)
            if isinstance(cmd, SendRequest):
                assert cmd.tag not in self.pending, "tags must be unique among in-flight requests"
                self.pending[cmd.tag] = cmd.request
            elif isinstance(cmd, CancelRequest):
                self.pending.pop(cmd.tag, None)
            elif isinstance(cmd, RunHook):
                self.hooks.append(cmd)
        return cmds

    def start(self) -> None:
        self.feed(self.core.start(self.now))

    def tags(self, kind: str) -> list[str]:
        return [t for t in self.pending if t.split("#", 1)[0] == kind]

    def has(self, kind: str) -> bool:
        return bool(self.tags(kind))

    def request(self, kind: str) -> Request:
        tags = self.tags(kind)
        assert tags, f"no pending {kind}; pending: {sorted(self.pending)}"
        return self.pending[tags[0]]

    def answer(self, kind: str, result: Response | BaseException, *, where: str | None = None) -> None:
        """Answer the oldest pending request of `kind` (whose path contains `where`, if given)."""
        tags = [
            t
            for t in self.tags(kind)
            if where is None or where in self.pending[t].path + str(self.pending[t].params)
        ]
        assert tags, f"no pending {kind} ({where}); pending: {sorted(self.pending)}"
        tag = tags[0]
        del self.pending[tag]
        self.feed(self.core.on_response(tag, result, self.now))

    def hook_done(self, exit_code: int | None) -> None:
        hook = self.hooks.pop(0)
        self.feed(self.core.on_hook_done(hook.tag, HookResult(exit_code), self.now))

    def advance(self, to: float) -> None:
        """Move the clock to `to`, firing every deadline on the way (no answers given)."""
        while True:
            deadline = self.core.next_deadline()
            if deadline is None or deadline > to:
                break
            self.now = max(self.now, deadline)
            self.feed(self.core.on_timer(self.now))
        self.now = to
        self.feed(self.core.on_timer(self.now))

    # --- happy-path helpers -----------------------------------------------------------

    def to_session(self, sid: str = SID) -> None:
        self.answer("lock.check_register", ok(None))
        self.answer("lock.check_pass", ok(None))
        self.answer("lock.session_create", ok({"ID": sid}))

    def to_leader(self) -> None:
        self.start()
        self.to_session()
        self.answer("lock.acquire", ok(True))
        assert self.core.election.is_leader

    def round(self, seq: int, *, peers_ok: bool = True, txn: Response | BaseException | None = None) -> None:
        """Answer the pending probe round: our txn and every peer read."""
        dcs = self.core.topology.names
        self.answer("round.txn", txn if txn is not None else txn_ok(entry("x", None), entry("row", None)))
        for peer in [d for d in dcs if d != self.core.dc]:
            if not self.has("round.peer"):
                break
            if peers_ok:
                self.answer("round.peer", peer_row(peer, seq, dcs), where=f"dc/{peer}/row")
            else:
                self.answer("round.peer", text(500, "Remote DC has no server currently reachable"))

    def next_round(self, seq: int, **kw: Any) -> None:
        self.advance(self.core.prober.next_round_at if self.core.prober else self.now)
        self.round(seq, **kw)

    def to_catching_up(self) -> None:
        """Leader, two confirming rounds (the first read of a peer gives no evidence)."""
        self.to_leader()
        self.round(1)
        self.next_round(2)

    def mint(self, token: int = 42, *, epoch_index: int = 0) -> None:
        epoch_key = "coordinator/c1/dc/dc1/epoch"
        self.answer(
            "catchup.epoch_read",
            ok([entry(epoch_key, b"{}", modify=epoch_index)])
            if epoch_index
            else Response(404, {"x-consul-index": "3"}),
        )
        self.answer(
            "catchup.mint",
            txn_ok(entry("coordinator/c1/dc/dc1/leader", None), entry(epoch_key, None, modify=token)),
        )

    def to_writable(self, token: int = 42) -> None:
        self.to_catching_up()
        self.mint(token)
