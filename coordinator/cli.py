"""The `coordinator` command line: run, status, may-write, check-config, exec, demo.

Contract: every failure prints ONE line on stderr (``coordinator: <message>``) and exits
non-zero; no traceback ever reaches the user (argparse usage errors exit 2 as usual).

Exit codes: ``may-write`` 0 yes / 1 no / 2 error; ``run`` 0 after a signal, 1 when the
local Consul agent cannot be asked for its datacenter, 2 for bad configuration (including
a DC not in the topology); ``status`` 0 / 2; ``check-config`` 0 valid / 2 invalid.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import socket
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from coordinator import __version__

DEFAULT_API = "http://127.0.0.1:8787"
API_ENV = "COORDINATOR_API"
CLIENT_TIMEOUT = 5.0


def _fail(message: str, code: int = 2) -> int:
    print(f"coordinator: {message}", file=sys.stderr, flush=True)
    return code


def _run_async(coro: Coroutine[Any, Any, int]) -> int:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


# -- run ------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from coordinator.daemon.logsetup import LEVELS, setup_logging
    from coordinator.daemon.serve import RunOptions, StartupError, serve

    if args.log_level not in LEVELS:
        return _fail(f"--log-level must be one of {', '.join(LEVELS)}")
    setup_logging(args.log_level, secrets=(os.environ.get("CONSUL_HTTP_TOKEN"),))
    opts = RunOptions(
        config=args.config,
        dc=args.dc,
        consul=args.consul,
        listen=args.listen,
        replica_id=args.id or f"{socket.gethostname()}-{os.getpid()}",
        admin_token_file=args.admin_token_file,
    )
    try:
        return _run_async(serve(opts, os.environ, sys.stdout))
    except StartupError as exc:
        return _fail(str(exc), exc.code)
    except KeyboardInterrupt:
        return 0
    except Exception as exc:  # the one-line promise holds even for our own bugs
        return _fail(f"unexpected error: {type(exc).__name__}: {exc}", 1)


# -- status / may-write ------------------------------------------------------------------


def _api_url(args: argparse.Namespace) -> str:
    return str(args.api or os.environ.get(API_ENV) or DEFAULT_API).rstrip("/")


def _get_json(url: str) -> tuple[int, Any]:
    """GET `url`; returns (status, decoded JSON). Raises ValueError with a one-line reason."""
    import httpx

    try:
        resp = httpx.get(url, timeout=CLIENT_TIMEOUT, trust_env=False)
    except httpx.HTTPError as exc:
        raise ValueError(f"cannot reach {url}: {type(exc).__name__}: {exc}") from None
    try:
        return resp.status_code, resp.json()
    except ValueError:
        raise ValueError(f"{url}: HTTP {resp.status_code} with a body that is not JSON") from None


def cmd_may_write(args: argparse.Namespace) -> int:
    url = _api_url(args) + "/v1/may-write"
    try:
        status, body = _get_json(url)
    except ValueError as exc:
        return _fail(str(exc))
    if not isinstance(body, dict) or not isinstance(body.get("allowed"), bool):
        return _fail(f"{url}: HTTP {status} without an 'allowed' field")
    allowed: bool = body["allowed"]
    if allowed != (status == 200):
        return _fail(f"{url}: inconsistent answer (HTTP {status}, allowed={allowed})")
    if not args.quiet:
        if allowed:
            print(
                f"yes dc={body.get('dc')} token={body.get('token')} valid_for_ms={body.get('valid_for_ms')}"
            )
        else:
            print(f"no dc={body.get('dc')} reason={body.get('reason')}")
    return 0 if allowed else 1


def cmd_status(args: argparse.Namespace) -> int:
    import json

    from coordinator.status_view import render_status

    url = _api_url(args) + "/v1/status"
    try:
        status, body = _get_json(url)
    except ValueError as exc:
        return _fail(str(exc))
    if status != 200 or not isinstance(body, dict):
        return _fail(f"{url}: HTTP {status}")
    if args.json:
        print(json.dumps(body, indent=2))
    else:
        print(render_status(body), end="")
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    from coordinator.config import check_config_main

    return check_config_main(args.path, sys.stdout, sys.stderr)


# -- exec / demo (other modules, imported lazily) -------------------------------------


def _lazy_adder(module: str, adder: str) -> Callable[[argparse.ArgumentParser], None] | None:
    """`module.adder`, imported only when the CLI is built (keeps `coordinator run` from
    importing what only other subcommands need); None when it cannot be loaded."""
    try:
        mod = importlib.import_module(module)
    except ImportError:
        return None
    add = getattr(mod, adder, None)
    return add if callable(add) else None


def _lazy_main(module: str, main: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            fn = getattr(importlib.import_module(module), main)
        except (ImportError, AttributeError) as exc:
            return _fail(f"cannot load '{args.command}' ({module}): {exc} (a broken installation?)")
        return int(fn(args))

    return run


# -- parser ---------------------------------------------------------------------------


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The full parser. The lazy subcommands (exec, demo) import their module only when
    `command` names them, so `coordinator may-write` stays fast to start."""
    parser = argparse.ArgumentParser(
        prog="coordinator", description="Multi-datacenter quorum coordinator for Consul."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the coordinator daemon for one DC")
    run.add_argument("--config", required=True, help="topology.yaml")
    run.add_argument("--dc", help="this DC (default: the local Consul agent's datacenter)")
    run.add_argument("--consul", help="Consul HTTP address (overrides CONSUL_HTTP_ADDR)")
    run.add_argument("--listen", default="127.0.0.1:8787", help="API HOST:PORT (port 0 = any free port)")
    run.add_argument("--id", help="replica id (default: hostname-pid)")
    run.add_argument("--admin-token-file", help="file holding the bearer token of the admin API")
    run.add_argument("--log-level", default="info", help="debug, info, warning or error")
    run.set_defaults(func=cmd_run)

    for name, helptext, func in (
        ("status", "show the DC state, quorum and link matrix", cmd_status),
        ("may-write", "ask whether this DC may write (exit 0 yes, 1 no, 2 error)", cmd_may_write),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--api", help=f"coordinator API URL (default ${API_ENV} or {DEFAULT_API})")
        if name == "status":
            p.add_argument("--json", action="store_true", help="print the raw JSON snapshot")
        else:
            p.add_argument("--quiet", "-q", action="store_true", help="print nothing, only the exit code")
        p.set_defaults(func=func)

    check = sub.add_parser("check-config", help="validate a topology file and explain it")
    check.add_argument("path")
    check.set_defaults(func=cmd_check_config)

    for name, module, helptext in (
        ("exec", "coordinator.exec", "run a command only while this DC may write"),
        ("demo", "coordinator.demo", "run a local three-DC demo"),
    ):
        add = _lazy_adder(module, f"add_{name}_arguments") if command == name else None
        p = sub.add_parser(name, help=helptext)
        if add is not None:
            add(p)
        else:
            p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        p.set_defaults(func=_lazy_main(module, f"{name}_main"))
    return parser


def _command_of(argv: Sequence[str]) -> str | None:
    return next((arg for arg in argv if not arg.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(_command_of(argv)).parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
