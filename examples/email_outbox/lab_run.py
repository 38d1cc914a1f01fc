"""The email run under the partition lab: real namespaces, iptables cuts, SIGKILL, SIGSTOP.

    sudo .venv/bin/python -m examples.email_outbox.lab_run --emails 3000 --duration 120 \\
        --seed 11 --out examples/email_outbox/results-lab.json

Needs root, `ip` and `iptables` (exit 3 with the reason otherwise). Layout (sim.lab,
docs/lab.md): DC *i* is namespace ``cqlab-dc<i>`` with its own emulated Consul and
``--replicas`` coordinator replicas (topology with global lock ``email``); next to them,
in the same namespace, ONE sender (examples.email_outbox.sender) that asks its DC's
replicas on 127.0.0.1 and talks to its DC's Consul on 127.0.0.1 (other DCs through
``?dc=``, i.e. over the WAN veths that the faults cut). The receiving MTA (aiosmtpd, in
this process, root namespace) listens on every DC's management address 10.78.i.1 (the
SMTP server is "outside": never cut). One enqueuer thread per DC writes into that DC's
outbox over the management link.

Faults (seeded), a new one every 2-5 s for ``--duration`` s, overlapping: cut two DCs
apart (iptables DROP both ways, 3-12 s); isolate a DC (bridge port down, 3-12 s); SIGKILL
a sender (restart 0.5-3 s later); SIGSTOP a sender 1-8 s (often longer than the lease);
SIGKILL the DC leader's coordinator (restart 0.5-3 s later); SIGSTOP it 1-8 s; SIGKILL a
whole "host" (the DC's sender and its leader replica). Then everything heals and the run
waits until every email is delivered (bounded by ``--drain-timeout``).

Counts (examples.email_outbox.analysis): enqueued, delivered, duplicates split into the
documented crash/pause-in-the-window ones and unexplained ones, concurrent sends, lost;
plus the DC-level checker's verdict on the lab history (sim.checker) and the faults.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from coordinator.core.topology import DcSpec, GlobalLockSpec, Topology
from examples.email_outbox.analysis import classify, split_count
from examples.email_outbox.outbox import Consul, enqueue_spread
from examples.email_outbox.receiver import Mailbox, start_receiver
from sim.lab import net
from sim.lab.faults import LinkFaults, both
from sim.lab.harness import API_PORT, CONSUL_PORT, Lab, LabConfig
from sim.lab.procs import Proc

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Target:
    """One process a fault may hit, with a busy flag so faults on it never overlap."""

    name: str
    busy: bool = False


class SenderProcs:
    """The sender of one DC, inside its namespace; restarts get a new id (new log)."""

    def __init__(self, lab: Lab, dc: str, smtp: str, replicas: int, logdir: Path) -> None:
        self.lab, self.dc, self.smtp, self.replicas, self.logdir = lab, dc, smtp, replicas, logdir
        self.gen = 0
        self.proc: Proc | None = None

    def start(self) -> None:
        self.gen += 1
        ident = f"{self.dc}-s{self.gen}"
        locks = ",".join(f"http://127.0.0.1:{API_PORT + k}" for k in range(self.replicas))
        argv = [
            "env", f"PYTHONPATH={ROOT}", sys.executable, "-m", "examples.email_outbox.sender",
            "--id", ident, "--lock", "email",
            "--locks", locks, "--consul", f"http://127.0.0.1:{CONSUL_PORT}",
            "--dcs", ",".join(self.lab.net.dcs), "--smtp", self.smtp,
            "--log", str(self.logdir / f"sender-{ident}.jsonl"),
        ]
        self.proc = Proc(f"sender-{ident}", self.lab.net.ns_exec(self.dc, argv), self.lab.logdir)
        self.proc.start()

    def signal(self, sig: signal.Signals) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.signal(sig)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()


class LabEmailRun:
    def __init__(self, args: argparse.Namespace, run_dir: Path) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.dir = run_dir
        self.dcs = [f"dc{i}" for i in range(1, args.dcs + 1)]
        self.topology = Topology(
            "mail", tuple(DcSpec(d) for d in self.dcs), global_locks=(GlobalLockSpec("email"),)
        )
        self.box = Mailbox(run_dir / "deliveries.jsonl")
        self.enqueued: list[str] = []
        self.enqueue_lock = threading.Lock()
        self.faults: dict[str, int] = {}
        self.fault_log: list[dict[str, Any]] = []
        self.senders: dict[str, SenderProcs] = {}
        self.busy: dict[str, bool] = {}
        self._fault_id = 0

    # -- the parts -------------------------------------------------------------------------

    def enqueuer(self, consul_url: str, dc: str, count: int, spread: float) -> None:
        consul = Consul(consul_url)
        enqueue_spread(consul, dc, count, spread, self.args.seed, self._record)
        consul.close()

    def _record(self, mail_id: str) -> None:
        with self.enqueue_lock:
            self.enqueued.append(mail_id)

    def _note(self, lab: Lab, kind: str, **fields: Any) -> None:
        self.faults[kind] = self.faults.get(kind, 0) + 1
        self.fault_log.append({"t": round(lab.rec.now(), 3), "kind": kind, **fields})

    async def _fault(self, lab: Lab, links: LinkFaults) -> None:
        rng = self.rng
        kind = rng.choice(["cut", "isolate", "kill_sender", "pause_sender", "kill_coord", "pause_coord",
                           "kill_host"])
        dc = rng.choice(self.dcs)
        self._fault_id += 1
        fid = self._fault_id
        if kind in ("cut", "isolate"):
            hold = rng.uniform(3.0, 12.0)
            if kind == "cut":
                other = rng.choice([d for d in self.dcs if d != dc])
                self._note(lab, kind, a=dc, b=other, seconds=round(hold, 2))
                links.set_drops(fid, both(dc, other), True)
                await asyncio.sleep(hold)
                links.set_drops(fid, both(dc, other), False)
            else:
                self._note(lab, kind, dc=dc, seconds=round(hold, 2))
                links.set_port(fid, dc, True)
                await asyncio.sleep(hold)
                links.set_port(fid, dc, False)
            return
        if self.busy.get(dc):
            return
        self.busy[dc] = True
        try:
            await self._process_fault(lab, kind, dc)
        finally:
            self.busy[dc] = False

    async def _process_fault(self, lab: Lab, kind: str, dc: str) -> None:
        rng = self.rng
        sender = self.senders[dc]
        rid = lab.resolve(dc, "leader")
        if kind == "kill_sender":
            self._note(lab, kind, dc=dc)
            sender.kill()
            await asyncio.sleep(rng.uniform(0.5, 3.0))
            await asyncio.to_thread(sender.start)
        elif kind == "pause_sender":
            hold = rng.uniform(1.0, 8.0)
            self._note(lab, kind, dc=dc, seconds=round(hold, 2))
            sender.signal(signal.SIGSTOP)
            await asyncio.sleep(hold)
            sender.signal(signal.SIGCONT)
        elif kind == "kill_coord":
            self._note(lab, kind, dc=dc, replica=rid)
            lab.kill_replica(dc, rid)
            await asyncio.sleep(rng.uniform(0.5, 3.0))
            await lab.restart_replica(dc, rid)
        elif kind == "pause_coord":
            hold = rng.uniform(1.0, 8.0)
            self._note(lab, kind, dc=dc, replica=rid, seconds=round(hold, 2))
            lab.pause_replica(dc, rid)
            await asyncio.sleep(hold)
            lab.resume_replica(dc, rid)
        else:  # kill_host: the DC's sender and its leader replica die together
            self._note(lab, kind, dc=dc, replica=rid)
            sender.kill()
            lab.kill_replica(dc, rid)
            await asyncio.sleep(rng.uniform(0.5, 2.0))
            await lab.restart_replica(dc, rid)
            await asyncio.to_thread(sender.start)

    async def chaos(self, lab: Lab, until: float) -> None:
        links = LinkFaults(lab.net, lab.rec)
        tasks: list[asyncio.Task[None]] = []
        while time.monotonic() < until:
            await asyncio.sleep(self.rng.uniform(2.0, 5.0))
            if time.monotonic() < until:
                tasks.append(asyncio.create_task(self._fault(lab, links)))
        await asyncio.gather(*tasks, return_exceptions=False)

    # -- the run ---------------------------------------------------------------------------

    async def execute(self) -> dict[str, Any]:
        args = self.args
        replicas = dict.fromkeys(self.dcs, args.replicas)
        port = _free_port()
        cfg = LabConfig(self.topology, replicas, self.dir, "email-outbox")
        servers: list[Controller] = []
        async with Lab(cfg) as lab:
            try:
                for d in lab.net.dcs.values():
                    servers.append(start_receiver(self.box, port, hostname=f"10.78.{d.number}.1"))
                for dc, d in lab.net.dcs.items():
                    smtp = f"10.78.{d.number}.1:{port}"
                    self.senders[dc] = SenderProcs(lab, dc, smtp, args.replicas, self.dir)
                await asyncio.gather(*(asyncio.to_thread(s.start) for s in self.senders.values()))
                spread = args.duration * 0.8
                threads = [
                    threading.Thread(
                        target=self.enqueuer,
                        args=(f"http://{lab.net.dcs[dc].mgmt_ip}:{CONSUL_PORT}", dc, share, spread),
                        daemon=True,
                    )
                    for dc, share in zip(self.dcs, split_count(args.emails, len(self.dcs)), strict=True)
                ]
                started = time.monotonic()
                for t in threads:
                    t.start()
                await self.chaos(lab, started + args.duration)
                for t in threads:
                    await asyncio.to_thread(t.join)
                total = len(self.enqueued)
                drain_started = time.monotonic()
                while time.monotonic() - drain_started < args.drain_timeout and len(self.box.mailbox) < total:
                    await asyncio.sleep(0.5)
                drained_in = time.monotonic() - drain_started
                await asyncio.sleep(2.0)  # late duplicates, if any, land in the counts
            finally:
                for s in self.senders.values():
                    s.signal(signal.SIGCONT)
                    s.kill()
                for ctl in servers:
                    ctl.stop()
        return self.report(total, drained_in)

    def report(self, total: int, drained_in: float) -> dict[str, Any]:
        from sim.history import load
        from sim.lab.analyze import check

        counts = classify(self.enqueued, self.box, self.dir.glob("sender-*.jsonl"))
        assert counts["enqueued"] == total
        history_path = self.dir / "history.jsonl"
        violations = [str(v) for v in check(load(str(history_path)))] if history_path.exists() else []
        return {
            **counts,
            "duplicates_injected_window": counts["duplicates_in_documented_window"],
            "faults": self.faults,
            "fault_log": self.fault_log,
            "dc_checker_violations": len(violations),
            "dc_checker_sample": violations[:5],
            "duration_s": self.args.duration,
            "drain_after_heal_s": round(drained_in, 2),
            "seed": self.args.seed,
            "dcs": len(self.dcs),
            "replicas_per_dc": self.args.replicas,
            "run_dir": str(self.dir),
            "partition_tool": "sim.lab: netns, iptables DROP / bridge port down, SIGKILL/SIGSTOP",
        }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_lab(args: argparse.Namespace, run_dir: Path) -> dict[str, Any]:
    """Run once under the machine-wide lab lock; always tears the lab down."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with net.lab_lock():
        try:
            return asyncio.run(LabEmailRun(args, run_dir).execute())
        finally:
            net.teardown()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="email outbox run under the partition lab (root)")
    ap.add_argument("--emails", type=int, default=3000)
    ap.add_argument("--duration", type=float, default=120.0)
    ap.add_argument("--drain-timeout", type=float, default=180.0)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--dcs", type=int, default=3)
    ap.add_argument("--replicas", type=int, default=2, help="coordinator replicas per DC")
    ap.add_argument("--run-dir", default="", help="where logs and history go (default: a temp dir)")
    ap.add_argument("--out", default="")
    return ap.parse_args(argv)


def main() -> int:
    args = parse_args()
    reason = net.unavailable_reason()
    if reason is not None:
        print(f"partition lab unavailable: {reason}", file=sys.stderr)
        return 3
    import tempfile

    run_dir = Path(args.run_dir) if args.run_dir else Path(tempfile.mkdtemp(prefix="email-lab-"))
    result = run_lab(args, run_dir)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
