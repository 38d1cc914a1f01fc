"""Audit of issue 3, "Bad input" and "Tokens never appear in logs" at start-up.

* a malformed ``--consul`` / CONSUL_HTTP_ADDR (bad port, broken IPv6 literal) is a
  configuration error: one line, exit 2, never "unexpected error";
* the second line of defence (the log redaction filter) knows every secret the daemon
  holds: the Consul token read from CONSUL_HTTP_TOKEN_FILE and the admin token, not only
  CONSUL_HTTP_TOKEN.
"""

from __future__ import annotations

import asyncio
import io
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from coordinator.consul.config import ConsulConfig, ConsulConfigError
from coordinator.daemon.logsetup import setup_logging
from coordinator.daemon.serve import RunOptions, StartupError, serve

REPO = Path(__file__).resolve().parent.parent
TOPOLOGY = REPO / "topology.yaml"

BAD_ADDRESSES = [
    "http://127.0.0.1:notaport",
    "127.0.0.1:99999",
    "http://[::1",
    "http://127.0.0.1:-1",
    "http://:8500",
]


@pytest.mark.parametrize("address", BAD_ADDRESSES)
def test_bad_consul_address_is_a_config_error(address: str) -> None:
    with pytest.raises(ConsulConfigError):
        ConsulConfig.from_env({}, address_override=address)
    with pytest.raises(ConsulConfigError):
        ConsulConfig.from_env({"CONSUL_HTTP_ADDR": address})


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1:8500", "http://localhost:8500", "https://[::1]:8501", "consul.service:8500", "host"],
)
def test_good_consul_addresses_still_parse(address: str) -> None:
    assert ConsulConfig.from_env({}, address_override=address).address.endswith(address.split("://")[-1])


def test_run_with_bad_consul_url_exits_2_with_one_line() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "coordinator", "run", "--config", str(TOPOLOGY), "--consul",
         "http://127.0.0.1:notaport", "--listen", "127.0.0.1:0"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "unexpected error" not in lines[0] and "notaport" in lines[0], proc.stderr


def test_token_file_and_admin_token_are_masked_in_logs(tmp_path: Path) -> None:
    consul_secret = "file-token-5b7d2c1e-0000"
    admin_secret = "admin-token-9a8b7c6d"
    (tmp_path / "consul.token").write_text(consul_secret + "\n")
    (tmp_path / "admin.token").write_text(admin_secret + "\n")
    stream = io.StringIO()
    old_stderr = sys.stderr
    sys.stderr = stream
    try:
        setup_logging("info", secrets=())
    finally:
        sys.stderr = old_stderr
    opts = RunOptions(
        config=str(TOPOLOGY),
        consul="http://127.0.0.1:1",  # nothing listens: start-up stops at DC discovery
        listen="127.0.0.1:0",
        admin_token_file=str(tmp_path / "admin.token"),
    )
    env = {"CONSUL_HTTP_TOKEN_FILE": str(tmp_path / "consul.token")}
    try:
        with pytest.raises(StartupError):
            asyncio.run(serve(opts, env, io.StringIO()))
        logging.getLogger("coordinator.audit").warning("leaked %s and %s", consul_secret, admin_secret)
    finally:
        for handler in list(logging.getLogger().handlers):
            logging.getLogger().removeHandler(handler)
    text = stream.getvalue()
    assert "leaked" in text
    assert consul_secret not in text and admin_secret not in text
