"""`coordinator exec`: the multi-DC `consul lock` -- run CMD only while this DC may write.

::

    coordinator exec --config topology.yaml [--dc DC] [--consul URL] [--id NAME]
                     [--grace S] [--once] -- CMD ARGS...
    coordinator exec --api URL [--grace S] [--once] -- CMD ARGS...

By default exec runs its own replica in-process (`ReplicaSource`: it competes in the DC's
leader election like `coordinator run`); with ``--api`` it follows an existing
coordinator. CMD gets ``COORDINATOR_TOKEN`` (the fencing token) and ``COORDINATOR_DC``.

Rules (the grant is the latest "yes"; ``expires_at`` its lease end, see exec_sources):

* CMD runs only while the latest answer is yes AND ``now < expires_at - grace``;
* when either stops holding -- a "no", a lease not renewed in time, an unreachable API
  ("unknown" is "no": the lease simply runs out) -- CMD's process group gets SIGTERM and,
  ``grace / 2`` later, SIGKILL; so CMD is dead at least ``grace / 2`` before the lease ends
  (minus the kernel's time to deliver SIGKILL);
* a yes with a different token than CMD's stops CMD and starts it again with the new one;
* after a stop, CMD is started again when writable again, with the new token; ``--once``
  exits instead;
* when CMD exits on its own, exec exits with CMD's status (like `consul lock`);
* SIGTERM/SIGINT to exec: stop CMD (TERM, then KILL), release the leadership, exit 0.

Exit codes: 0 after SIGTERM/SIGINT; CMD's status when CMD exited on its own or, with
``--once``, after it was stopped (death by signal N = 128+N); 1 the local Consul agent
could not be asked for its DC or an unexpected error; 2 bad arguments or configuration
(including ``--grace`` not below the lease); 126/127 CMD could not be started.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from coordinator.exec_sources import ApiSource, Grant, GrantSource, ReplicaSource, SourceError
from coordinator.supervise import Child, SpawnError

log = logging.getLogger("coordinator.exec")

DEFAULT_GRACE_FRACTION = 0.25
"""Default --grace as a fraction of the lease."""
BLOCK_WAIT = 30.0
"""Long-poll wait while not writable (any change of the answer wakes it earlier)."""
REFRESH_MAX = 0.1
"""Longest time between two reads of a yes (to see its lease renewed)."""
RETRY_BACKOFF = (0.1, 2.0)
"""Initial and largest pause after a failed read of the answer."""


class UsageError(Exception):
    """Bad arguments: one line, exit 2."""


@dataclass(frozen=True)
class ExecOptions:
    argv: tuple[str, ...]
    grace: float
    kill_after: float
    once: bool = False


def add_exec_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `coordinator exec` (wired by coordinator.cli)."""
    parser.add_argument("--config", help="topology.yaml (runs a replica in-process)")
    parser.add_argument("--dc", help="this DC (default: the local Consul agent's datacenter)")
    parser.add_argument("--consul", help="Consul HTTP address (overrides CONSUL_HTTP_ADDR)")
    parser.add_argument("--id", help="replica id (default: hostname-exec-pid)")
    parser.add_argument("--api", help="follow this coordinator API instead of running a replica")
    parser.add_argument(
        "--global",
        dest="global_lock",
        metavar="NAME",
        help="run CMD only while this DC holds the cross-DC lock NAME (topology global_locks)",
    )
    parser.add_argument(
        "--grace",
        type=float,
        help=f"stop CMD this many seconds before the lease ends (default {DEFAULT_GRACE_FRACTION} x lease)",
    )
    parser.add_argument("--once", action="store_true", help="exit instead of restarting CMD after a stop")
    parser.add_argument("--log-level", default="info", help="debug, info, warning or error")
    parser.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- CMD ARGS", help="the command to run")


def _command(args: argparse.Namespace) -> tuple[str, ...]:
    cmd = list(args.cmd or [])
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        raise UsageError("exec needs a command: coordinator exec [options] -- CMD ARGS")
    return tuple(cmd)


def _source(args: argparse.Namespace, environ: Mapping[str, str]) -> GrantSource:
    name = getattr(args, "global_lock", None)
    if args.api:
        if args.config or args.dc or args.consul or args.id:
            raise UsageError("--api follows an existing coordinator: drop --config/--dc/--consul/--id")
        if name:
            from coordinator.exec_global import GlobalApiSource

            return GlobalApiSource(args.api, name)
        return ApiSource(args.api)
    if not args.config:
        raise UsageError("exec needs --config topology.yaml (own replica) or --api URL (follow one)")
    from coordinator.daemon.serve import RunOptions

    replica_id = args.id or f"{socket.gethostname()}-exec-{os.getpid()}"
    opts = RunOptions(config=args.config, dc=args.dc, consul=args.consul, replica_id=replica_id)
    if name:
        from coordinator.exec_global import GlobalReplicaSource

        return GlobalReplicaSource(opts, environ, name)
    return ReplicaSource(opts, environ)


def exec_options(argv: Sequence[str], grace: float | None, lease: float, once: bool) -> ExecOptions:
    """Validate --grace against the lease (UsageError when not 0 < grace < lease)."""
    g = lease * DEFAULT_GRACE_FRACTION if grace is None else grace
    if not g > 0:
        raise UsageError(f"--grace must be positive, got {g:g}")
    if g >= lease:
        raise UsageError(f"--grace {g:g}s must be below the lease ({lease:g}s), or CMD could never run")
    return ExecOptions(argv=tuple(argv), grace=g, kill_after=g / 2, once=once)


class Supervisor:
    """Runs CMD according to the grants of one source (see the module rules)."""

    def __init__(self, source: GrantSource, opts: ExecOptions, environ: Mapping[str, str]) -> None:
        self.source = source
        self.opts = opts
        self.environ = dict(environ)
        self.clock = time.monotonic
        self.grant: Grant | None = None
        self.child: Child | None = None
        self.runs = 0
        self._changed = asyncio.Event()
        self.stop_requested = asyncio.Event()

    def _writable(self, now: float) -> bool:
        g = self.grant
        return g is not None and g.allowed and now < g.expires_at - self.opts.grace

    def _poll_wait(self) -> float:
        g = self.grant
        if g is None or not g.allowed:
            return BLOCK_WAIT
        slack = g.expires_at - self.opts.grace - self.clock()
        return min(REFRESH_MAX, max(slack / 3, 0.01))

    async def _poller(self) -> None:
        index = 0
        backoff = RETRY_BACKOFF[0]
        failing = False
        while True:
            try:
                grant = await self.source.poll(index, self._poll_wait())
            except SourceError as exc:
                if not failing:
                    log.warning("cannot read the may-write answer (retrying): %s", exc)
                failing = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, RETRY_BACKOFF[1])
                continue
            if failing:
                log.info("may-write answers again")
            failing, backoff = False, RETRY_BACKOFF[0]
            self.grant, index = grant, grant.index
            self._changed.set()

    async def _start_child(self, grant: Grant) -> int | None:
        env = dict(self.environ)
        env["COORDINATOR_TOKEN"] = str(grant.token)
        env["COORDINATOR_DC"] = grant.dc
        try:
            self.child = await Child.spawn(self.opts.argv, env, grant.token)
        except SpawnError as exc:
            log.error("%s", exc)
            return exc.status
        self.runs += 1
        log.info(
            "writable (dc=%s token=%s): started %s pid=%d",
            grant.dc,
            grant.token,
            self.opts.argv[0],
            self.child.pid,
        )
        return None

    async def _stop_child(self, why: str) -> int:
        child = self.child
        assert child is not None
        log.warning("stopping pid=%d (token %s): %s", child.pid, child.token, why)
        status = await child.stop(self.opts.kill_after)
        log.info("pid=%d stopped, status %d", child.pid, status)
        self.child = None
        return status

    def _why_not(self, now: float) -> str:
        g = self.grant
        if g is None:
            return "no answer yet"
        if not g.allowed:
            return f"may-write says no ({g.reason})"
        return f"lease not renewed (ends in {g.expires_at - now:.3f}s, grace {self.opts.grace:g}s)"

    async def run(self) -> int:
        """Supervise until CMD exits on its own, --once ends it, or a stop is requested."""
        poller = asyncio.create_task(self._poller(), name="exec-poller")
        try:
            return await self._loop()
        finally:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller

    async def _loop(self) -> int:
        stop_wait = asyncio.ensure_future(self.stop_requested.wait())
        try:
            while True:
                now = self.clock()
                writable = self._writable(now)
                child = self.child
                if child is not None and not child.running:
                    status = child.status()
                    log.info("pid=%d exited on its own, status %d", child.pid, status)
                    self.child = None
                    return status
                if self.stop_requested.is_set():
                    if child is not None:
                        await self._stop_child("exec received a signal")
                    return 0
                if child is not None and not writable:
                    status = await self._stop_child(self._why_not(self.clock()))
                    if self.opts.once:
                        return status
                    continue
                if child is not None and self.grant is not None and self.grant.token != child.token:
                    status = await self._stop_child(f"new fencing token {self.grant.token}")
                    if self.opts.once:
                        return status
                    continue
                if child is None and writable and self.grant is not None:
                    failed = await self._start_child(self.grant)
                    if failed is not None:
                        return failed
                    continue
                timeout = None
                if self.child is not None and self.grant is not None:
                    timeout = max(self.grant.expires_at - self.opts.grace - self.clock(), 0.0)
                self._changed.clear()
                changed = asyncio.ensure_future(self._changed.wait())
                waits: set[asyncio.Future[Any]] = {changed, stop_wait}
                if self.child is not None:
                    waits.add(self.child.exited)
                await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                changed.cancel()
        finally:
            stop_wait.cancel()


async def run_exec(
    source: GrantSource, args: argparse.Namespace, argv: Sequence[str], environ: Mapping[str, str]
) -> int:
    """Start `source`, validate the grace against its lease, supervise, then close."""
    from coordinator.daemon.serve import StartupError

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        try:
            await source.start()
            lease = await _lease(source, stop)
        except StartupError as exc:
            print(f"coordinator: {exc}", file=sys.stderr, flush=True)
            return exc.code
        if lease is None:
            return 0
        try:
            opts = exec_options(argv, args.grace, lease, args.once)
        except UsageError as exc:
            print(f"coordinator: {exc}", file=sys.stderr, flush=True)
            return 2
        sup = Supervisor(source, opts, environ)
        sup.stop_requested = stop
        return await sup.run()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await source.close()


async def _lease(source: GrantSource, stop: asyncio.Event) -> float | None:
    """The source's lease, retrying while it cannot be read; None when stopped meanwhile."""
    warned = False
    while not stop.is_set():
        try:
            return await source.lease()
        except SourceError as exc:
            if not warned:
                log.warning("%s (retrying)", exc)
                warned = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), RETRY_BACKOFF[1])
    return None


def exec_main(args: argparse.Namespace) -> int:
    """Entry point of `coordinator exec` (see the module docstring for the exit codes)."""
    from coordinator.daemon.logsetup import LEVELS, setup_logging

    if args.log_level not in LEVELS:
        print(f"coordinator: --log-level must be one of {', '.join(LEVELS)}", file=sys.stderr)
        return 2
    try:
        argv = _command(args)
        if args.grace is not None and not args.grace > 0:
            raise UsageError(f"--grace must be positive, got {args.grace:g}")
        source = _source(args, os.environ)
    except UsageError as exc:
        print(f"coordinator: {exc}", file=sys.stderr, flush=True)
        return 2
    setup_logging(args.log_level, secrets=(os.environ.get("CONSUL_HTTP_TOKEN"),))
    try:
        return asyncio.run(run_exec(source, args, argv, os.environ))
    except KeyboardInterrupt:
        return 0
    except Exception as exc:  # the one-line promise of the CLI holds here too
        print(f"coordinator: unexpected error: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return 1
