"""The lab network: one network namespace per DC, a bridge for WAN traffic, real cuts.

Layout (DC number i = 1, 2, ... in topology order):

- namespace ``cqlab-dc<i>``; inside it ``wan0`` = 10.77.0.(10+i)/24, whose peer
  ``cqlab-w<i>`` (root namespace) is a port of the bridge ``cqlab0`` (no address of its
  own: the root namespace is not on the WAN);
- a management link per DC, never faulted: ``cqlab-m<i>`` = 10.78.i.1/30 in the root
  namespace, ``mgmt0`` = 10.78.i.2/30 inside. The harness watches replicas over it, so
  observing never depends on the WAN being up.

Faults (each one a real packet drop or a real link state):

- ``drop(src, dst)``: ``iptables -A INPUT -s <src WAN address> -j DROP`` in dst's namespace,
  i.e. the directed link src -> dst is down (both directions = symmetric cut);
- ``link(dc, up)``: ``ip link set cqlab-w<i> down|up`` (isolate the DC from the bridge).

Ownership invariant: every name this module creates starts with ``cqlab``, and
`teardown` deletes exactly the namespaces and links with that prefix (killing the
processes left inside those namespaces first). Nothing else on the host is touched:
iptables rules live only inside the lab's own namespaces, which vanish with them.
Every command has a timeout; nothing loops unbounded.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

PREFIX = "cqlab"
BRIDGE = "cqlab0"
WAN_NET = "10.77.0"
MGMT_NET = "10.78"
CMD_TIMEOUT = 10.0


class LabUnavailable(RuntimeError):
    """Namespaces cannot be created here (not root, no `ip`/`iptables`, no permission)."""


class NetError(RuntimeError):
    """An `ip`/`iptables` command failed: str() names the command and its stderr."""


def run(argv: Sequence[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run one command with a timeout; raise NetError (check=True) on non-zero exit."""
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=CMD_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NetError(f"{' '.join(argv)}: {exc}") from None
    if check and proc.returncode != 0:
        raise NetError(f"{' '.join(argv)}: exit {proc.returncode}: {proc.stderr.strip()}")
    return proc


LOCK_PATH = "/run/cqlab.lock"


@contextlib.contextmanager
def lab_lock(timeout: float = 900.0) -> Iterator[None]:
    """Hold the machine-wide lab lock: two labs would fight over the same cqlab names.
    Waits at most `timeout` seconds (polling), then raises LabUnavailable."""
    with open(LOCK_PATH, "a", encoding="utf-8") as fh:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LabUnavailable(f"another lab run holds {LOCK_PATH}") from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def unavailable_reason() -> str | None:
    """Why the lab cannot run here, or None when it can (tries a throw-away namespace)."""
    if os.geteuid() != 0:
        return "the partition lab needs root (network namespaces, iptables)"
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            return f"'{tool}' not found (Debian packages: iproute2 iptables)"
    probe = f"{PREFIX}-probe{os.getpid()}"  # per process: parallel test workers probe at once
    run(["ip", "netns", "del", probe], check=False)
    made = run(["ip", "netns", "add", probe], check=False)
    if made.returncode != 0:
        return f"'ip netns add' failed: {made.stderr.strip()}"
    try:
        argv = ["ip", "netns", "exec", probe, "iptables", "-A", "INPUT", "-s", "10.77.0.250", "-j", "DROP"]
        rule = run(argv, check=False)
        if rule.returncode != 0:
            return f"iptables does not work inside a namespace: {rule.stderr.strip()}"
    finally:
        run(["ip", "netns", "del", probe], check=False)
    return None


@dataclass(frozen=True)
class DcNet:
    name: str
    number: int

    @property
    def netns(self) -> str:
        return f"{PREFIX}-{self.name}"

    @property
    def wan_ip(self) -> str:
        return f"{WAN_NET}.{10 + self.number}"

    @property
    def mgmt_ip(self) -> str:
        """The DC's address on its management link (reach its processes from the harness)."""
        return f"{MGMT_NET}.{self.number}.2"

    @property
    def host_veth(self) -> str:
        return f"{PREFIX}-w{self.number}"

    @property
    def mgmt_veth(self) -> str:
        return f"{PREFIX}-m{self.number}"


class LabNet:
    """Creates the namespaces and links for `dc_names`; `teardown()` removes every cqlab thing."""

    def __init__(self, dc_names: Sequence[str]) -> None:
        if len(dc_names) > 200:
            raise ValueError("at most 200 DCs")
        self.dcs = {name: DcNet(name, i) for i, name in enumerate(dc_names, start=1)}
        self._drops: set[tuple[str, str]] = set()

    def ns_exec(self, dc: str, argv: Sequence[str]) -> list[str]:
        """The argv that runs `argv` inside dc's namespace."""
        return ["ip", "netns", "exec", self.dcs[dc].netns, *argv]

    def setup(self) -> None:
        teardown()
        run(["ip", "link", "add", BRIDGE, "type", "bridge"])
        run(["ip", "link", "set", BRIDGE, "up"])
        for dc in self.dcs.values():
            ns = dc.netns
            run(["ip", "netns", "add", ns])
            run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"])
            run(["ip", "link", "add", dc.host_veth, "type", "veth", "peer", "name", "wan0", "netns", ns])
            run(["ip", "link", "set", dc.host_veth, "master", BRIDGE])
            run(["ip", "link", "set", dc.host_veth, "up"])
            run(["ip", "netns", "exec", ns, "ip", "addr", "add", f"{dc.wan_ip}/24", "dev", "wan0"])
            run(["ip", "netns", "exec", ns, "ip", "link", "set", "wan0", "up"])
            run(["ip", "link", "add", dc.mgmt_veth, "type", "veth", "peer", "name", "mgmt0", "netns", ns])
            run(["ip", "addr", "add", f"{MGMT_NET}.{dc.number}.1/30", "dev", dc.mgmt_veth])
            run(["ip", "link", "set", dc.mgmt_veth, "up"])
            run(["ip", "netns", "exec", ns, "ip", "addr", "add", f"{dc.mgmt_ip}/30", "dev", "mgmt0"])
            run(["ip", "netns", "exec", ns, "ip", "link", "set", "mgmt0", "up"])

    def drop(self, src: str, dst: str, on: bool) -> None:
        """Drop (on) or stop dropping packets from src's WAN address arriving in dst."""
        if on == ((src, dst) in self._drops):
            return
        action = "-A" if on else "-D"
        rule = ["iptables", "-w", "5", action, "INPUT", "-s", self.dcs[src].wan_ip, "-j", "DROP"]
        run(self.ns_exec(dst, rule))
        if on:
            self._drops.add((src, dst))
        else:
            self._drops.discard((src, dst))

    def link(self, dc: str, up: bool) -> None:
        """Set dc's bridge port up or down (down = the DC is isolated from every peer)."""
        run(["ip", "link", "set", self.dcs[dc].host_veth, "up" if up else "down"])

    def teardown(self) -> None:
        teardown()


def _lab_namespaces() -> list[str]:
    out = run(["ip", "netns", "list"], check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(f"{PREFIX}-")]


def _lab_links() -> list[str]:
    out = run(["ip", "-o", "link", "show"], check=False).stdout
    names = []
    for line in out.splitlines():
        parts = line.split(":", 2)
        if len(parts) >= 2:
            name = parts[1].strip().split("@")[0]
            if name.startswith(PREFIX):
                names.append(name)
    return names


def teardown() -> None:
    """Kill every process inside a cqlab namespace, delete the namespaces and cqlab links.

    Idempotent and best effort (never raises): safe after a failure or Ctrl-C, and before
    a run to clear leftovers of a crashed one.
    """
    if shutil.which("ip") is None:
        return
    for ns in _lab_namespaces():
        pids = run(["ip", "netns", "pids", ns], check=False).stdout.split()
        for pid in pids:
            with contextlib.suppress(ValueError, ProcessLookupError, PermissionError):
                os.kill(int(pid), signal.SIGKILL)
        run(["ip", "netns", "del", ns], check=False)
    for name in _lab_links():
        run(["ip", "link", "del", name], check=False)
