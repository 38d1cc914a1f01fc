"""The scripted story of `coordinator demo`, told against a running `LocalCluster`.

Steps (each must happen within `STEP_DEADLINE` seconds, else `StepFailed`):

1. every DC writable;
2. isolate dc1 (all links to and from it cut): dc1 fences while the others stay writable
   (sampled all along: a "no" on their side is counted and printed as a false fence);
3. heal: dc1 goes catching-up -> writable with a new token;
4. SIGKILL dc1's leader replica: the other dc1 replica takes over and dc1 is writable again.

Times are measured from the fault, on this process's monotonic clock, by polling the
replicas' ``/v1/may-write`` every `POLL` seconds (so they carry up to POLL of sampling
error). Transition times printed from ``/v1/status`` use the replicas' monotonic clock,
which on one Linux host is the same clock as ours.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from typing import Any, TextIO

from coordinator.demo_cluster import LocalCluster

STEP_DEADLINE = 45.0
POLL = 0.02


class StepFailed(Exception):
    """A step of the story did not happen in time: `str()` is the one line to print."""


def _cell(value: Any) -> str:
    return "-" if value is None or value == "" else str(value)


def render_matrix(cluster: LocalCluster, t0: float | None = None) -> str:
    """One line per DC from its leader's /v1/status, plus its view of the links."""
    names = cluster.datacenters
    head = f"    {'dc':<5}{'state':<13}{'may-write':<26}{'leader':<9}{'token':<7}{'quorum':<13}links"
    lines = [head]
    for dc in names:
        rid = cluster.leader_replica(dc)
        live = [r for r in cluster.replicas_of(dc) if cluster.replicas[r].alive]
        st = cluster.status(rid or (live[0] if live else "")) if (rid or live) else None
        if st is None:
            lines.append(f"    {dc:<5}(no replica answers)")
            continue
        answer = "yes" if st.get("allowed") else f"no ({_cell(st.get('reason'))})"
        quorum = st.get("quorum") or {}
        members = ",".join(str(m).removeprefix("dc") for m in quorum.get("members", ())) or "-"
        row = (st.get("undirected") or {}).get(dc, {})
        links = " ".join(f"{o}{'+' if row.get(o) else '.'}" for o in names if o != dc)
        lines.append(
            f"    {dc:<5}{_cell(st.get('dc_state')):<13}{answer:<26}{_cell(st.get('leader')):<9}"
            f"{_cell(st.get('token')):<7}{members:<13}{links}"
        )
    if t0 is not None:
        lines.append(f"    (+{time.monotonic() - t0:.2f} s after the fault; links: + up both ways, . down)")
    return "\n".join(lines) + "\n"


def wait_until(cond: Callable[[], bool], what: str, on_sample: Callable[[], None] | None = None) -> float:
    """Poll `cond` until true; returns the monotonic time it first held. Raises StepFailed."""
    deadline = time.monotonic() + STEP_DEADLINE
    while True:
        now = time.monotonic()
        if on_sample is not None:
            on_sample()
        if cond():
            return now
        if now > deadline:
            raise StepFailed(f"{what} did not happen within {STEP_DEADLINE:g} s")
        time.sleep(POLL)


class Story:
    def __init__(self, cluster: LocalCluster, out: TextIO, pause: float) -> None:
        self.c = cluster
        self.out = out
        self.pause = pause
        self.false_fences = 0
        self.majority_samples = 0

    def say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def show(self, t0: float | None = None) -> None:
        self.out.write(render_matrix(self.c, t0))
        self.out.flush()
        if self.pause:
            time.sleep(self.pause)

    def _allowed(self, dc: str) -> bool:
        ans = self.c.dc_answer(dc)
        return bool(ans and ans.get("allowed"))

    def _sample_majority(self, minority: str) -> None:
        for dc in self.c.datacenters:
            if dc != minority:
                self.majority_samples += 1
                ans = self.c.dc_answer(dc)
                if not (ans and ans.get("allowed")):
                    self.false_fences += 1

    def run(self) -> None:
        c, first = self.c, self.c.datacenters[0]
        self.say("step 1: waiting for every DC to be writable")
        t_start = time.monotonic()
        wait_until(lambda: all(self._allowed(dc) for dc in c.datacenters), "every DC writable")
        self.say(f"all {len(c.datacenters)} DCs writable after {time.monotonic() - t_start:.2f} s")
        self.show()

        before = (c.dc_answer(first) or {}).get("token")
        self.say(f"step 2: isolating {first} (every link to and from it cut)")
        t0 = time.monotonic()
        c.isolate(first)
        t_fenced = wait_until(
            lambda: not self._allowed(first), f"{first} fencing", lambda: self._sample_majority(first)
        )
        reason = (c.dc_answer(first) or {}).get("reason")
        self.say(f"{first} fenced after {t_fenced - t0:.2f} s (reason {reason})")
        others = [dc for dc in c.datacenters if dc != first]
        # keep sampling the majority for one more lease: a fence there would show now
        end = time.monotonic() + 2.0
        while time.monotonic() < end:
            self._sample_majority(first)
            time.sleep(POLL * 5)
        self.say(
            f"{'/'.join(others)} stayed writable: {self.false_fences} refusals "
            f"in {self.majority_samples} samples"
        )
        self.show(t0)

        self.say("step 3: healing every link")
        t0 = time.monotonic()
        c.heal()
        seen_catching_up = False

        def catching() -> None:
            nonlocal seen_catching_up
            st = c.status(c.leader_replica(first) or c.replicas_of(first)[0]) or {}
            seen_catching_up = seen_catching_up or st.get("dc_state") == "catching-up"

        t_back = wait_until(lambda: self._allowed(first), f"{first} rejoining", catching)
        after = (c.dc_answer(first) or {}).get("token")
        path = "fenced -> catching-up -> writable" if seen_catching_up else self._path(first, t0)
        self.say(f"{first} writable again after {t_back - t0:.2f} s ({path}); token {before} -> {after}")
        self.show(t0)

        self.step_failover(first)

    def _path(self, dc: str, since: float) -> str:
        rid = self.c.leader_replica(dc)
        st = self.c.status(rid) if rid else None
        moves = [t for t in (st or {}).get("transitions", []) if float(t.get("at", 0)) >= since]
        if not moves:
            return "state path not recorded"
        return " -> ".join([str(moves[0]["from_state"])] + [str(m["to_state"]) for m in moves])

    def step_failover(self, dc: str) -> None:
        c = self.c
        leader = c.leader_replica(dc)
        others = [r for r in c.replicas_of(dc) if r != leader and c.replicas[r].alive]
        if leader is None or not others:
            raise StepFailed(f"fail-over step needs a leader and a standby replica in {dc}")
        before = (c.may_write(leader) or {}).get("token")
        self.say(f"step 4: SIGKILL of {dc}'s leader replica {leader} (pid {c.replicas[leader].popen.pid})")
        t0 = time.monotonic()
        c.kill(leader, signal.SIGKILL)

        def taken_over() -> bool:
            return any((c.may_write(r) or {}).get("allowed") for r in others)

        t_done = wait_until(taken_over, f"fail-over to {', '.join(others)}")
        new = next(r for r in others if (c.may_write(r) or {}).get("allowed"))
        token = (c.may_write(new) or {}).get("token")
        self.say(f"fail-over after {t_done - t0:.2f} s: {new} leads {dc}, token {before} -> {token}")
        self.show(t0)
