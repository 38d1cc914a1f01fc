"""The emulator through real HTTP: CLI contract, blocking wake-ups, forwarding faults, peers, ACL."""

from __future__ import annotations

import concurrent.futures
import json
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator

import httpx
import pytest

pytestmark = pytest.mark.integration


class Emulator:
    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "sim.consul", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            line = pool.submit(self.proc.stdout.readline).result(timeout=20)
        self.urls: dict[str, str] = json.loads(line)["datacenters"]

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=10)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    em = Emulator("--datacenters", "dc1,dc2,dc3", "--http-port", "0", "--forward-timeout", "1",
                  "--seed", "3")
    yield em
    assert em.stop() == 0


def test_prints_one_json_line_with_every_dc(emu: Emulator) -> None:
    assert list(emu.urls) == ["dc1", "dc2", "dc3"]
    for name, url in emu.urls.items():
        cfg = httpx.get(url + "/v1/agent/self").json()["Config"]
        assert cfg["Datacenter"] == name


def test_blocking_get_wakes_on_write_and_times_out_with_same_index(emu: Emulator) -> None:
    url = emu.urls["dc1"]
    httpx.put(url + "/v1/kv/blk", content=b"1")
    index = httpx.get(url + "/v1/kv/blk").headers["X-Consul-Index"]
    threading.Timer(0.3, lambda: httpx.put(url + "/v1/kv/blk", content=b"2")).start()
    woke = httpx.get(url + "/v1/kv/blk", params={"index": index, "wait": "60s"}, timeout=10)
    assert int(woke.headers["X-Consul-Index"]) > int(index)
    assert woke.json()[0]["Value"] == "Mg=="
    index = woke.headers["X-Consul-Index"]
    timed_out = httpx.get(url + "/v1/kv/blk", params={"index": index, "wait": "1s"}, timeout=10)
    assert timed_out.status_code == 200 and timed_out.headers["X-Consul-Index"] == index


def test_cross_dc_read_cut_and_heal(emu: Emulator) -> None:
    dc1, dc2 = emu.urls["dc1"], emu.urls["dc2"]
    httpx.put(dc2 + "/v1/kv/x", content=b"two")
    assert httpx.get(dc1 + "/v1/kv/x", params={"dc": "dc2"}).json()[0]["Value"] == "dHdv"
    assert httpx.get(dc1 + "/v1/kv/x", params={"dc": "nowhere"}).text == "No path to datacenter"
    httpx.put(dc1 + "/_emulator/link/dc1/dc2", params={"state": "down"})
    try:
        cut = httpx.get(dc1 + "/v1/kv/x", params={"dc": "dc2"}, timeout=10)
        assert (cut.status_code, cut.text) == (500, "Remote DC has no server currently reachable")
        reverse = httpx.get(dc2 + "/v1/kv/x", params={"dc": "dc2"})
        assert reverse.status_code == 200
        state = httpx.get(dc3_url(emu) + "/_emulator/state").json()
        assert state["links"][0]["from"] == "dc1" and state["links"][0]["to"] == "dc2"
    finally:
        httpx.put(dc2 + "/_emulator/heal")
    assert httpx.get(dc1 + "/v1/kv/x", params={"dc": "dc2"}).status_code == 200


def dc3_url(emu: Emulator) -> str:
    return emu.urls["dc3"]


def test_leader_loss_over_http(emu: Emulator) -> None:
    dc3 = emu.urls["dc3"]
    httpx.put(dc3 + "/v1/kv/l", content=b"1")
    httpx.put(emu.urls["dc1"] + "/_emulator/leader", params={"state": "down", "dc": "dc3"})
    try:
        assert httpx.get(dc3 + "/v1/kv/l").text == "No cluster leader"
        assert httpx.put(dc3 + "/v1/kv/l", content=b"2").status_code == 500
        stale = httpx.get(dc3 + "/v1/kv/l", params={"stale": ""})
        assert stale.status_code == 200 and stale.headers["X-Consul-KnownLeader"] == "false"
        assert httpx.get(dc3 + "/v1/status/leader").json() == ""
    finally:
        httpx.put(dc3 + "/_emulator/leader", params={"state": "up"})
    assert httpx.get(dc3 + "/v1/kv/l").status_code == 200


def test_session_lock_flow_over_http(emu: Emulator) -> None:
    url = emu.urls["dc1"]
    sid = httpx.put(url + "/v1/session/create", json={"TTL": "10s", "LockDelay": "0s"}).json()["ID"]
    assert httpx.put(url + "/v1/kv/lk", params={"acquire": sid}, content=b"me").json() is True
    assert httpx.put(url + "/v1/session/renew/" + sid).json()[0]["ID"] == sid
    other = httpx.put(url + "/v1/session/create", json={"Checks": []}).json()["ID"]
    assert httpx.put(url + "/v1/kv/lk", params={"acquire": other}).json() is False
    assert httpx.put(url + "/v1/session/destroy/" + sid).json() is True
    assert httpx.put(url + "/v1/kv/lk", params={"acquire": other}).json() is True
    cross = httpx.put(url + "/v1/session/create", params={"dc": "dc2"}, json={"Node": "dc1-server-1"})
    assert (cross.status_code, cross.text) == (500, "Missing node registration")


def test_two_processes_forward_over_real_http() -> None:
    p1, p2 = _free_port(), _free_port()
    b = Emulator("--datacenters", "dc2", "--http-port", str(p2), "--peer", f"dc1=http://127.0.0.1:{p1}",
                 "--forward-timeout", "1")
    a = Emulator("--datacenters", "dc1", "--http-port", str(p1), "--peer", f"dc2=http://127.0.0.1:{p2}",
                 "--forward-timeout", "1")
    try:
        dc1, dc2 = a.urls["dc1"], b.urls["dc2"]
        httpx.put(dc2 + "/v1/kv/peer", content=b"hi")
        got = httpx.get(dc1 + "/v1/kv/peer", params={"dc": "dc2"})
        assert got.status_code == 200 and got.json()[0]["Value"] == "aGk="
        assert httpx.get(dc1 + "/v1/catalog/datacenters").json() == ["dc1", "dc2"]
        httpx.put(dc2 + "/_emulator/link/dc1/dc2", params={"state": "down"})
        cut = httpx.get(dc1 + "/v1/kv/peer", params={"dc": "dc2"}, timeout=10)
        assert (cut.status_code, cut.text) == (500, "Remote DC has no server currently reachable")
        httpx.put(dc2 + "/_emulator/heal")
        assert httpx.get(dc1 + "/v1/kv/peer", params={"dc": "dc2"}).status_code == 200
        assert b.stop() == 0
        gone = httpx.get(dc1 + "/v1/kv/peer", params={"dc": "dc2"}, timeout=10)
        assert (gone.status_code, gone.text) == (500, "Remote DC has no server currently reachable")
    finally:
        for em in (a, b):
            if em.proc.poll() is None:
                assert em.stop() == 0


def test_acl_master_token_over_http() -> None:
    em = Emulator("--datacenters", "dc1,dc2", "--http-port", "0", "--acl-master-token", "root")
    try:
        url = em.urls["dc1"]
        denied = httpx.get(url + "/v1/kv/a")
        assert (denied.status_code, denied.text) == (403, "Permission denied")
        assert httpx.get(url + "/v1/kv/a", headers={"X-Consul-Token": "bad"}).text == "ACL not found"
        assert httpx.put(url + "/v1/kv/a", content=b"1", headers={"X-Consul-Token": "root"}).json() is True
        fwd = httpx.get(url + "/v1/kv/a", params={"dc": "dc2"}, headers={"X-Consul-Token": "root"})
        assert fwd.status_code == 404
        assert httpx.get(url + "/v1/kv/a", params={"dc": "dc2"}).status_code == 403
    finally:
        assert em.stop() == 0


@pytest.mark.parametrize("args", [
    [],
    ["--datacenters", "dc1,dc1"],
    ["--datacenters", "dc1", "--peer", "dc2"],
    ["--datacenters", "dc1", "--peer", "dc1=http://127.0.0.1:1"],
    ["--datacenters", "dc1", "--session-expiry", "never"],
    ["--datacenters", "dc1", "--forward-timeout", "0"],
])
def test_bad_arguments_exit_2_with_one_line(args: list[str]) -> None:
    done = subprocess.run([sys.executable, "-m", "sim.consul", *args], capture_output=True, text=True,
                          timeout=20)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert "error" in done.stderr and "Traceback" not in done.stderr


def test_forwarded_blocking_query_wakes(emu: Emulator) -> None:
    dc1, dc2 = emu.urls["dc1"], emu.urls["dc2"]
    httpx.put(dc2 + "/v1/kv/fw", content=b"1")
    index = httpx.get(dc2 + "/v1/kv/fw").headers["X-Consul-Index"]
    threading.Timer(0.3, lambda: httpx.put(dc2 + "/v1/kv/fw", content=b"2")).start()
    # wait=60s but the client gives up after 10s: only a wake-up on the write can answer in time.
    woke = httpx.get(dc1 + "/v1/kv/fw", params={"dc": "dc2", "index": index, "wait": "60s"}, timeout=10)
    assert woke.json()[0]["Value"] == "Mg=="
