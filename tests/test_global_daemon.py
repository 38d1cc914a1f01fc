"""Real processes: emulator + one `coordinator run` per DC with a global lock; the Python
client sees exactly one holder, and isolating its DC moves the lock with a higher term."""

from __future__ import annotations

import base64
import json
import signal
import threading
import time
from pathlib import Path

import httpx

from coordinator.demo_cluster import LocalCluster
from coordinator.locks_client import LocksClient, LockUnavailable

DCS = ("dc1", "dc2", "dc3")
TOPO = "cluster: mail\ndatacenters:\n  dc1: {}\n  dc2: {}\n  dc3: {}\nglobal_locks:\n  email: {}\n"


def _held(clients: dict[str, LocksClient]) -> dict[str, int]:
    out = {}
    for dc, cl in clients.items():
        try:
            st = cl.get("email")
        except LockUnavailable:
            continue
        if st.held and st.term is not None:
            out[dc] = st.term
    return out


def _wait(clients: dict[str, LocksClient], pred: object, limit: float) -> dict[str, int]:
    end = time.monotonic() + limit
    while time.monotonic() < end:
        held = _held(clients)
        assert len(held) <= 1, held
        if callable(pred) and pred(held):
            return held
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def test_lock_endpoint_client_and_failover(tmp_path: Path) -> None:
    topo = tmp_path / "t.yaml"
    topo.write_text(TOPO)
    with LocalCluster(topo, DCS, workdir=tmp_path) as c:
        c.start_emulator()
        for dc in DCS:
            c.start_replica(dc, f"{dc}-r1")
        clients = {dc: LocksClient([c.api(f"{dc}-r1")]) for dc in DCS}
        first = _wait(clients, lambda h: len(h) == 1, 20.0)
        (dc, term), = first.items()
        st = clients[dc].get("email")
        assert 0 < st.valid_for <= 3.0 and st.holder is not None and st.holder.startswith(dc + "/")
        other = next(d for d in DCS if d != dc)
        end = time.monotonic() + 10.0
        no = clients[other].get("email")
        while no.holder != st.holder and time.monotonic() < end:  # its leader reads the registers
            time.sleep(0.05)
            no = clients[other].get("email")
        assert not no.held and no.valid_for == 0 and no.holder == st.holder and no.index > 0
        # long-poll returns when the index moves (or after wait): here after wait
        t0 = time.monotonic()
        again = clients[other].get("email", index=no.index, wait=0.3)
        assert again.index >= no.index and time.monotonic() - t0 >= 0.25
        resp = httpx.get(c.api(f"{dc}-r1") + "/v1/locks/nope", trust_env=False)
        assert resp.status_code == 404
        resp = httpx.post(c.api(f"{dc}-r1") + "/v1/locks/email", trust_env=False)
        assert resp.status_code == 405
        c.isolate(dc)
        after = _wait(clients, lambda h: len(h) == 1 and dc not in h, 30.0)
        assert next(iter(after.values())) > term
        for cl in clients.values():
            cl.close()


class RegisterWatch:
    """Blocking queries on one DC's register; records every (holder, term) it sees, in order."""

    def __init__(self, consul_url: str, key: str) -> None:
        self.url = f"{consul_url}/v1/kv/{key}"
        self.seen: list[tuple[str, int]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        index = 0
        with httpx.Client(trust_env=False, timeout=10.0) as http:
            while not self.stop.is_set():
                try:
                    resp = http.get(self.url, params={"index": str(index), "wait": "1s"} if index else {})
                except httpx.HTTPError:
                    time.sleep(0.05)
                    continue
                index = int(resp.headers.get("X-Consul-Index", "0"))
                if resp.status_code != 200:
                    continue
                raw = base64.b64decode(resp.json()[0]["Value"] or "")
                value = json.loads(raw)
                item = (str(value["holder"]), int(value["term"]))
                if not self.seen or self.seen[-1] != item:
                    self.seen.append(item)


def test_sigterm_of_the_holder_releases_and_another_dc_takes_over_through_the_release(
    tmp_path: Path,
) -> None:
    topo = tmp_path / "t.yaml"
    topo.write_text(TOPO)
    with LocalCluster(topo, DCS, workdir=tmp_path) as c:
        c.start_emulator()
        for dc in DCS:
            c.start_replica(dc, f"{dc}-r1")
        clients = {dc: LocksClient([c.api(f"{dc}-r1")]) for dc in DCS}
        first = _wait(clients, lambda h: len(h) == 1, 20.0)
        (dc, term), = first.items()
        holder = clients[dc].get("email").holder
        watches = [RegisterWatch(c.consul[d], "coordinator/mail/global/email") for d in DCS]
        time.sleep(1.0)  # the watchers see the holder's renewals
        stopped = time.monotonic()
        c.kill(f"{dc}-r1", signal.SIGTERM)
        assert c.replicas[f"{dc}-r1"].popen.wait(timeout=10) == 0
        del clients[dc]
        after = _wait(clients, lambda h: len(h) == 1, 15.0)
        handover = time.monotonic() - stopped
        (new_dc, new_term), = after.items()
        time.sleep(0.5)
        for w in watches:
            w.stop.set()
        for w in watches:
            w.thread.join(timeout=5)
        assert new_dc != dc and new_term == term + 1
        # The registers went holder -> released (same term) -> next holder: the next holder
        # took them through the release, not after lease + margin of silence (which would
        # show holder -> next holder with no "" in between on every register).
        released = ("", term)
        assert holder is not None
        through_release = [
            w.seen for w in watches
            if released in w.seen and w.seen.index(released) > 0
            and w.seen[w.seen.index(released) - 1] == (holder, term)
            and any(t == new_term for _, t in w.seen[w.seen.index(released) + 1:])
        ]
        assert len(through_release) >= 2, ([w.seen for w in watches], handover)
        print(f"hand-over after SIGTERM: {handover:.2f}s (lease + margin = 3.5s)")
        for cl in clients.values():
            cl.close()
