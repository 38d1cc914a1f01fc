"""The email run: 3 DCs, real processes, random faults, thousands of emails, exact counts.

    python -m examples.email_outbox.run --emails 3000 --duration 90 --seed 1

Processes: the Consul emulator (all DCs, link faults through its control API), one
`coordinator run` replica per DC (topology with global lock "email"), one sender per DC
(examples.email_outbox.sender), the receiving MTA (aiosmtpd, in this process), and one
enqueuer thread per DC writing into its own DC's outbox.

Faults, one every 2-5 s for `--duration` seconds (seeded): isolate a DC for 3-12 s; SIGKILL
a sender and restart it 0.5-3 s later; SIGSTOP a sender for 1-8 s (often longer than the
lease); SIGKILL a DC's coordinator together with its sender (the host dies), restart both.
Then everything heals and the run waits until every email is delivered (or a timeout).

Counts (written to --out): enqueued, delivered (unique Message-IDs), deliveries (SMTP
transactions accepted), duplicates = deliveries - delivered, split into those explained by
the documented window (a delivery whose sender never logged "marked" for it: killed,
paused or deposed between SMTP acceptance and "mark sent", or an SMTP exchange that ended
after its sender's hold) and unexplained ones (target 0); lost = enqueued - delivered
(target 0).

This uses the emulator's link faults (coordinator.demo_cluster.LocalCluster), not the
network-namespace partition lab: the lab needs root and netns; the fault kinds are the same
(cuts, SIGKILL, SIGSTOP) but cuts act on forwarded `?dc=` traffic only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from coordinator.demo_cluster import LocalCluster
from examples.email_outbox.analysis import classify, split_count
from examples.email_outbox.outbox import Consul, enqueue_spread
from examples.email_outbox.receiver import Mailbox, start_receiver

DCS = ("dc1", "dc2", "dc3")
TOPOLOGY = """cluster: mail
datacenters:
  dc1: {}
  dc2: {}
  dc3: {}
global_locks:
  email: {}
"""
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SenderProc:
    def __init__(self, run: Run, dc: str) -> None:
        self.run, self.dc = run, dc
        self.gen = 0
        self.popen: subprocess.Popen[bytes] | None = None
        self.paused = False

    @property
    def ident(self) -> str:
        return f"{self.dc}-s{self.gen}"

    def start(self) -> None:
        self.gen += 1
        r = self.run
        argv = [sys.executable, "-m", "examples.email_outbox.sender", "--id", self.ident, "--lock", "email"]
        argv += ["--locks", r.cluster.api(f"{self.dc}-r1"), "--consul", r.cluster.consul[self.dc]]
        argv += ["--dcs", ",".join(DCS), "--smtp", f"127.0.0.1:{r.smtp_port}"]
        argv += ["--log", str(r.workdir / f"sender-{self.ident}.jsonl")]
        with open(r.workdir / f"sender-{self.ident}.err", "wb") as err:
            self.popen = subprocess.Popen(
                argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True
            )
        self.paused = False

    def signal(self, sig: signal.Signals) -> None:
        if self.popen is not None and self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        if self.popen is not None:
            self.popen.wait()
        self.popen = None


class Run:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.workdir = Path(tempfile.mkdtemp(prefix="email-run-"))
        topo = self.workdir / "topology.yaml"
        topo.write_text(TOPOLOGY)
        self.cluster = LocalCluster(topo, DCS, workdir=self.workdir)
        self.box = Mailbox(self.workdir / "deliveries.jsonl")
        self.smtp_port = free_port()
        self.senders = {dc: SenderProc(self, dc) for dc in DCS}
        self.enqueued: list[str] = []
        self.enqueue_lock = threading.Lock()
        self.faults: dict[str, int] = {}
        self.stop_enqueue = threading.Event()

    def enqueuer(self, dc: str, count: int, spread: float) -> None:
        consul = Consul(self.cluster.consul[dc])
        enqueue_spread(consul, dc, count, spread, self.args.seed, self._record)
        consul.close()

    def _record(self, mail_id: str) -> None:
        with self.enqueue_lock:
            self.enqueued.append(mail_id)

    def fault(self, kind: str) -> None:
        self.faults[kind] = self.faults.get(kind, 0) + 1

    def chaos(self, until: float) -> None:
        rng = self.rng
        while time.monotonic() < until:
            time.sleep(rng.uniform(2.0, 5.0))
            kind = rng.choice(["isolate", "kill_sender", "pause_sender", "kill_host"])
            dc = rng.choice(DCS)
            sender = self.senders[dc]
            if kind == "isolate":
                self.cluster.isolate(dc)
                time.sleep(rng.uniform(3.0, 12.0))
                self.cluster.heal()
            elif kind == "kill_sender":
                sender.kill()
                time.sleep(rng.uniform(0.5, 3.0))
                sender.start()
            elif kind == "pause_sender":
                sender.signal(signal.SIGSTOP)
                time.sleep(rng.uniform(1.0, 8.0))
                sender.signal(signal.SIGCONT)
            else:
                sender.kill()
                self.cluster.kill(f"{dc}-r1")
                time.sleep(rng.uniform(0.5, 2.0))
                self.cluster.start_replica(dc, f"{dc}-r1")
                sender.start()
            self.fault(kind)

    def execute(self) -> dict[str, Any]:
        args = self.args
        ctl = start_receiver(self.box, self.smtp_port)
        try:
            self.cluster.start_emulator()
            for dc in DCS:
                self.cluster.start_replica(dc, f"{dc}-r1")
            for s in self.senders.values():
                s.start()
            spread = args.duration * 0.8
            threads = [
                threading.Thread(target=self.enqueuer, args=(dc, share, spread), daemon=True)
                for dc, share in zip(DCS, split_count(args.emails, len(DCS)), strict=True)
            ]
            started = time.monotonic()
            for t in threads:
                t.start()
            self.chaos(started + args.duration)
            self.cluster.heal()
            for t in threads:
                t.join()
            drain_started = time.monotonic()
            total = len(self.enqueued)
            while time.monotonic() - drain_started < args.drain_timeout:
                if len(self.box.mailbox) >= total:
                    break
                time.sleep(0.5)
            drained_in = time.monotonic() - drain_started
            time.sleep(2.0)  # late duplicates, if any, land in the counts
            return self.report(total, drained_in)
        finally:
            for s in self.senders.values():
                s.signal(signal.SIGCONT)
                s.kill()
            self.cluster.stop()
            ctl.stop()

    def report(self, total: int, drained_in: float) -> dict[str, Any]:
        counts = classify(self.enqueued, self.box, self.workdir.glob("sender-*.jsonl"))
        assert counts["enqueued"] == total
        return {
            **counts,
            "faults": self.faults,
            "duration_s": self.args.duration,
            "drain_after_heal_s": round(drained_in, 2),
            "seed": self.args.seed,
            "workdir": str(self.workdir),
            "partition_tool": "emulator link faults (LocalCluster), not the netns lab",
        }


def main() -> None:
    ap = argparse.ArgumentParser(description="email outbox run under faults")
    ap.add_argument("--emails", type=int, default=3000)
    ap.add_argument("--duration", type=float, default=90.0)
    ap.add_argument("--drain-timeout", type=float, default=180.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    result = Run(args).execute()
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
