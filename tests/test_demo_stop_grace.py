"""`LocalCluster.stop` waits for a replica at least as long as the replica waits for itself.

A graceful stop of `coordinator run` may take up to `runner.shutdown_grace(core)` (the
last "yes" running out, the global release writes, the DC steps); SIGKILLing earlier
would turn it into a crash (the session then expires with its lock-delay).
"""

from __future__ import annotations

from pathlib import Path

from coordinator.config.load import load_topology
from coordinator.core.replica import ReplicaCore
from coordinator.daemon.runner import shutdown_grace
from coordinator.demo_cluster import EXIT_SLACK, replica_stop_grace

GLOBAL = "cluster: mail\ndatacenters:\n  dc1: {}\n  dc2: {}\n  dc3: {}\nglobal_locks:\n  email: {}\n"
SLOW = "cluster: slow\ntimers: {lease: 4s, lock_delay: 5s}\ndatacenters:\n  dc1: {}\n  dc2: {}\n  dc3: {}\n"


def _grace_of_core(path: Path) -> float:
    return shutdown_grace(ReplicaCore(load_topology(path), "dc1", "r"))


def test_stop_grace_covers_the_replicas_own_shutdown_grace(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(GLOBAL)
    grace = replica_stop_grace(path, "dc1")
    assert grace == _grace_of_core(path) + EXIT_SLACK
    assert grace > 8.0  # the runner's bound with a global lock at default timers is ~8.2 s


def test_stop_grace_follows_the_topologys_timers(tmp_path: Path) -> None:
    fast, slow = tmp_path / "fast.yaml", tmp_path / "slow.yaml"
    fast.write_text(SLOW.replace("timers: {lease: 4s, lock_delay: 5s}\n", ""))
    slow.write_text(SLOW)
    assert replica_stop_grace(slow, "dc1") == _grace_of_core(slow) + EXIT_SLACK
    assert replica_stop_grace(slow, "dc1") > replica_stop_grace(fast, "dc1")


def test_a_topology_that_no_longer_loads_gets_the_minimum(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("cluster: [")
    assert replica_stop_grace(path, "dc1") == shutdown_grace(object()) + EXIT_SLACK
