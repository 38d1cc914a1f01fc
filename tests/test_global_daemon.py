"""Real processes: emulator + one `coordinator run` per DC with a global lock; the Python
client sees exactly one holder, and isolating its DC moves the lock with a higher term."""

from __future__ import annotations

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
