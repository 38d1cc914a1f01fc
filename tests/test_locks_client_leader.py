"""`LocksClient` with several URLs (the replicas of one DC): it long-polls the replica
that leads the DC, never a follower for a full wait, and only passes an index to the
replica that produced it. Driven through httpx.MockTransport: no network."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from coordinator.locks_client import LEADERLESS_POLL, LocksClient, LockUnavailable

A, B = "http://a:1", "http://b:1"


@dataclass
class Replicas:
    """Each URL's replica id, the leader it names, whether it holds, its lock index."""

    ids: dict[str, str] = field(default_factory=lambda: {"a": "dc1-r1", "b": "dc1-r2"})
    leader: dict[str, str | None] = field(default_factory=lambda: {"a": "dc1-r2", "b": "dc1-r2"})
    held: dict[str, bool] = field(default_factory=lambda: {"a": False, "b": False})
    index: dict[str, int] = field(default_factory=lambda: {"a": 11, "b": 50})
    down: set[str] = field(default_factory=set)
    seen: list[tuple[str, dict[str, list[str]]]] = field(default_factory=list)

    def handler(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        query = parse_qs(urlsplit(str(request.url)).query)
        self.seen.append((host, query))
        if host in self.down:
            raise httpx.ConnectError("refused", request=request)
        held = self.held[host]
        body = {"name": "email", "held": held, "holder": None, "term": 7 if held else None,
                "valid_for_ms": 2000 if held else 0, "index": self.index[host], "dc": "dc1",
                "replica": self.ids[host], "leader": self.leader[host]}
        return httpx.Response(200 if held else 503, content=json.dumps(body).encode())

    def client(self) -> LocksClient:
        return LocksClient([A, B], transport=httpx.MockTransport(self.handler))


def test_a_sweep_returns_the_leaders_answer_and_the_long_poll_goes_to_the_leader_only() -> None:
    r = Replicas()
    with r.client() as locks:
        st = locks.get("email")
        assert st.url == B and st.index == 50 and st.from_leader
        r.seen.clear()
        st = locks.get("email", index=st.index, wait=5.0)
        assert [host for host, _ in r.seen] == ["b"]
        assert r.seen[0][1]["index"] == ["50"] and r.seen[0][1]["wait"] == ["5.000s"]


def test_a_holder_anywhere_is_returned_at_once() -> None:
    r = Replicas()
    r.held["b"] = True
    with r.client() as locks:
        st = locks.get("email")
        assert st.held and st.term == 7 and st.url == B


def test_when_the_leader_stops_answering_the_client_finds_the_new_one() -> None:
    r = Replicas()
    with r.client() as locks:
        st = locks.get("email")
        r.down.add("b")
        r.leader["a"] = "dc1-r1"  # a took over
        r.held["a"] = True
        r.seen.clear()
        st = locks.get("email", index=st.index, wait=5.0)
        assert st.held and st.url == A
        # the failed long-poll went to b; the index 50 (b's) was never sent to a
        assert r.seen[0][0] == "b"
        assert all("index" not in q for host, q in r.seen if host == "a")


def test_a_follower_is_long_polled_for_at_most_the_leaderless_cap() -> None:
    r = Replicas()
    r.leader = {"a": None, "b": None}  # election under way: nobody leads
    with r.client() as locks:
        st = locks.get("email")
        assert not st.from_leader
        r.seen.clear()
        locks.get("email", index=st.index, wait=30.0)
        first_host, first_query = r.seen[0]
        assert first_query["wait"] == [f"{LEADERLESS_POLL:.3f}s"]
        assert first_host == urlsplit(st.url or "").hostname


def test_no_answer_anywhere_is_lock_unavailable() -> None:
    r = Replicas()
    r.down = {"a", "b"}
    with r.client() as locks, pytest.raises(LockUnavailable):
        locks.get("email")
