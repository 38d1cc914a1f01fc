"""`coordinator demo [--config topology.yaml] [--fast]`: the three-DC story on real processes.

Starts the Consul emulator (``python -m sim.consul``, free ports) for the DCs of the
topology, one ``coordinator run`` per DC plus a second replica in the first DC, then tells
the story of coordinator.demo_story (isolate -> fence, heal -> rejoin, SIGKILL -> fail-over)
with a compact matrix at each step.

Exit codes: 0 the whole story happened; 1 a step did not happen within its deadline or a
process did not start (one line says which); 2 bad configuration; 130 interrupted
(Ctrl-C or SIGTERM). In every case every process the demo started is stopped first
(SIGTERM, then SIGKILL), so none is left behind.

``--fast`` drops the pauses that let a human read each matrix; the test suite uses it.
"""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType

from coordinator.demo_cluster import ClusterError, LocalCluster
from coordinator.demo_story import StepFailed, Story

DEFAULT_CONFIG = "topology.yaml"
READING_PAUSE = 2.0
STANDBY_SUFFIX = ("-a", "-b")


class _Interrupted(Exception):
    pass


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `coordinator demo` (wired by coordinator.cli)."""
    parser.add_argument("--config", default=DEFAULT_CONFIG, help=f"topology file (default {DEFAULT_CONFIG})")
    parser.add_argument("--fast", action="store_true", help="no reading pauses between the steps")


def _raise_interrupted(signum: int, frame: FrameType | None) -> None:
    raise _Interrupted


def demo_main(args: argparse.Namespace) -> int:
    """Entry point of `coordinator demo`; see the module docstring for the exit codes."""
    from coordinator.config import ConfigError, load_topology

    try:
        topology = load_topology(args.config)
    except ConfigError as exc:
        print(f"coordinator: {exc}", file=sys.stderr, flush=True)
        return 2
    names = topology.names
    if len(names) < 2:
        print("coordinator: the demo needs at least two datacenters", file=sys.stderr, flush=True)
        return 2
    previous = signal.signal(signal.SIGTERM, _raise_interrupted)
    out = sys.stdout
    cluster = LocalCluster(args.config, names)
    try:
        out.write(f"cluster {topology.cluster}: datacenters {', '.join(names)}; logs in {cluster.workdir}\n")
        consul = cluster.start_emulator()
        emulator_pid = cluster.emulator.popen.pid if cluster.emulator else 0
        urls = "  ".join(f"{dc}={url}" for dc, url in consul.items())
        out.write(f"emulated Consul: pid {emulator_pid}  {urls}\n")
        for dc in names:
            suffixes = STANDBY_SUFFIX if dc == names[0] else STANDBY_SUFFIX[:1]
            for suffix in suffixes:
                proc = cluster.start_replica(dc, dc + suffix)
                out.write(f"replica {proc.name:<6} pid {proc.popen.pid:<7} API {proc.info['listening']}\n")
        out.flush()
        Story(cluster, out, 0.0 if args.fast else READING_PAUSE).run()
        out.write("demo finished: every step happened\n")
        return 0
    except (StepFailed, ClusterError) as exc:
        out.flush()
        print(f"coordinator: demo failed: {exc} (logs in {cluster.workdir})", file=sys.stderr, flush=True)
        return 1
    except (KeyboardInterrupt, _Interrupted):
        print("coordinator: demo interrupted; stopping every process", file=sys.stderr, flush=True)
        return 130
    finally:
        # the clean-up itself must not be interrupted half-way
        signal.signal(signal.SIGTERM, _ignore)
        previous_int = signal.signal(signal.SIGINT, _ignore)
        try:
            cluster.stop()
        finally:
            signal.signal(signal.SIGTERM, previous)
            signal.signal(signal.SIGINT, previous_int)


def _ignore(signum: int, frame: FrameType | None) -> None:
    return None
