"""Partitions on real processes: `python -m sim.consul` + `coordinator run` subprocesses.

One federation for the module (3 DCs, two replicas in dc1); every test leaves it healed
and fully writable. Waits are polls with generous deadlines; nothing asserts a duration.
The majority side is sampled continuously while a fault is on: a single "no" there is a
false fence and fails the test.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from procs import allowed, running_cluster, wait_for

from coordinator.demo_cluster import LocalCluster

pytestmark = pytest.mark.integration

DCS = ("dc1", "dc2", "dc3")
SETTLE = 3.0
"""Seconds a fault is held after the minority fenced, while the majority is sampled."""


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with running_cluster({"dc1": ["dc1-a", "dc1-b"], "dc2": ["dc2-a"], "dc3": ["dc3-a"]}) as c:
        yield c


def token(c: LocalCluster, dc: str) -> int:
    ans = c.dc_answer(dc) or {}
    assert ans.get("allowed"), f"{dc} is not writable: {ans}"
    return int(ans["token"])


def full_mesh(c: LocalCluster) -> bool:
    """Every DC writable, and every DC leader sees all links up (quorum = all DCs)."""
    for dc in DCS:
        rid = c.leader_replica(dc)
        st = c.status(rid) if rid else None
        if not st or not st.get("allowed") or list((st.get("quorum") or {}).get("members", ())) != list(DCS):
            return False
    return True


def heal_and_settle(c: LocalCluster) -> None:
    c.heal()
    wait_for(lambda: full_mesh(c), "every DC writable with a full mesh after heal")


class MajoritySampler:
    """Counts every refusal seen on the DCs that must stay writable."""

    def __init__(self, c: LocalCluster, dcs: tuple[str, ...]) -> None:
        self.c, self.dcs = c, dcs
        self.samples = 0
        self.refusals: list[tuple[str, object]] = []

    def sample(self) -> None:
        for dc in self.dcs:
            ans = self.c.dc_answer(dc)
            self.samples += 1
            if not (ans and ans.get("allowed")):
                self.refusals.append((dc, ans))

    def hold(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.sample()
            time.sleep(0.05)


def reason(c: LocalCluster, dc: str) -> object:
    return (c.dc_answer(dc) or {}).get("reason")


def test_isolated_dc_fences_majority_never_does_and_rejoins_with_higher_token(cluster: LocalCluster) -> None:
    wait_for(lambda: full_mesh(cluster), "a full mesh")
    before = token(cluster, "dc1")
    majority = MajoritySampler(cluster, ("dc2", "dc3"))
    cluster.isolate("dc1")
    wait_for(lambda: reason(cluster, "dc1") == "not-in-quorum", "dc1 fenced (not-in-quorum)")
    # dc1 answers 503 now, through every replica it has
    for rid in cluster.replicas_of("dc1"):
        assert (cluster.may_write(rid) or {}).get("allowed") is False
    majority.hold(SETTLE)
    assert majority.refusals == [], f"false fences on the majority side: {majority.refusals[:5]}"
    assert majority.samples > 0
    cluster.heal()
    wait_for(lambda: allowed(cluster, "dc1"), "dc1 writable after heal")
    assert token(cluster, "dc1") > before


def test_one_way_cut_into_dc1_fences_dc1(cluster: LocalCluster) -> None:
    wait_for(lambda: full_mesh(cluster), "a full mesh")
    majority = MajoritySampler(cluster, ("dc2", "dc3"))
    cluster.link("dc2", "dc1", up=False)
    cluster.link("dc3", "dc1", up=False)
    wait_for(lambda: not allowed(cluster, "dc1"), "dc1 fenced by a one-way cut", step=0.05)
    assert reason(cluster, "dc1") == "not-in-quorum"
    majority.hold(SETTLE)
    assert majority.refusals == [], f"false fences on the majority side: {majority.refusals[:5]}"
    heal_and_settle(cluster)


def test_non_transitive_partition_keeps_every_dc_writable(cluster: LocalCluster) -> None:
    """dc1-dc3 cut both ways, dc1-dc2 and dc2-dc3 up: {dc1,dc2} and {dc2,dc3} are both
    majority cliques, so by the clique rule (coordinator/core/quorum.py) every DC stays
    writable."""
    wait_for(lambda: full_mesh(cluster), "a full mesh")
    everyone = MajoritySampler(cluster, DCS)
    cluster.link("dc1", "dc3", up=False)
    cluster.link("dc3", "dc1", up=False)
    everyone.hold(2 * SETTLE)
    assert everyone.refusals == [], f"refusals under a non-transitive cut: {everyone.refusals[:5]}"
    st = cluster.status(cluster.leader_replica("dc1") or "dc1-a") or {}
    wait_for(
        lambda: (
            (cluster.status(cluster.leader_replica("dc1") or "dc1-a") or {})
            .get("undirected", {})
            .get("dc1", {})
            .get("dc3")
            is False
        ),
        "dc1 seeing the dc1-dc3 link down",
    )
    assert st.get("dc_state") == "writable"
    heal_and_settle(cluster)


def test_local_consul_leader_loss_fences_only_that_dc(cluster: LocalCluster) -> None:
    wait_for(lambda: full_mesh(cluster), "a full mesh")
    others = MajoritySampler(cluster, ("dc1", "dc3"))
    cluster.consul_leader("dc2", up=False)
    try:
        wait_for(lambda: reason(cluster, "dc2") == "no-consul-leader", "dc2 fenced with no-consul-leader")
        others.hold(SETTLE)
        assert others.refusals == [], f"dc1/dc3 refused while dc2 lost its leader: {others.refusals[:5]}"
    finally:
        cluster.consul_leader("dc2", up=True)
    heal_and_settle(cluster)


def test_leader_replica_sigkill_fails_over_with_higher_token(cluster: LocalCluster) -> None:
    leader = cluster.leader_replica("dc1")
    assert leader is not None
    before = token(cluster, "dc1")
    standby = next(r for r in cluster.replicas_of("dc1") if r != leader)
    cluster.kill(leader)
    wait_for(lambda: bool((cluster.may_write(standby) or {}).get("allowed")), f"{standby} writable")
    ans = cluster.may_write(standby) or {}
    assert ans.get("leader") == standby
    assert int(ans["token"]) > before
