"""Acceptance audit of issue 2: the emulator's command-line contract.

`python -m sim.consul --datacenters ... [--bind] [--http-port] [--peer]` prints one JSON
line once every DC answers (IPv6 `--bind` gives bracketed URLs), exits 0 on SIGINT as
well as SIGTERM (also with a blocking query in flight), and answers bad arguments with one
line on stderr and exit 2 (never a traceback, never another status).
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading

import httpx
import pytest


def _start(*extra: str) -> tuple[subprocess.Popen[str], dict[str, str]]:
    proc = subprocess.Popen([sys.executable, "-m", "sim.consul", "--datacenters", "dc1,dc2",
                             "--http-port", "0", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    urls: dict[str, str] = json.loads(line)["datacenters"]
    return proc, urls


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_exits_0_even_with_a_blocking_query_in_flight(sig: signal.Signals) -> None:
    proc, urls = _start()
    try:
        assert list(urls) == ["dc1", "dc2"]
        url = urls["dc1"]
        assert httpx.put(url + "/v1/kv/k", content=b"x").json() is True
        index = httpx.get(url + "/v1/kv/k").headers["X-Consul-Index"]
        outcome: list[object] = []

        def poll() -> None:
            try:
                outcome.append(httpx.get(url + "/v1/kv/k", params={"index": index, "wait": "30s"},
                                         timeout=40).status_code)
            except httpx.HTTPError as err:
                outcome.append(err)

        watcher = threading.Thread(target=poll, daemon=True)
        watcher.start()
        watcher.join(0.5)
        assert watcher.is_alive()
        proc.send_signal(sig)
        assert proc.wait(timeout=15) == 0
        watcher.join(15)
        assert outcome, "the in-flight blocking query never returned after shutdown"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _has_ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="this machine cannot bind ::1")
def test_ipv6_bind_prints_bracketed_urls_that_serve_and_forward() -> None:
    proc, urls = _start("--bind", "::1")
    try:
        assert list(urls) == ["dc1", "dc2"]
        for url in urls.values():
            assert url.startswith("http://[::1]:"), url
            assert httpx.get(url + "/v1/status/leader").status_code == 200
        dc1 = urls["dc1"]
        assert httpx.put(dc1 + "/v1/kv/k", params={"dc": "dc2"}, content=b"v6").json() is True
        got = httpx.get(urls["dc2"] + "/v1/kv/k", params={"raw": ""})
        assert (got.status_code, got.content) == (200, b"v6")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.mark.parametrize("args", [
    ["--datacenters", "dc1", "--bind", "999.1.1.1"],
    ["--datacenters", "dc1", "--bind", "not an address"],
    ["--datacenters", "dc1", "--bind", "fe80::1%lo"],
    ["--datacenters", "dc1", "--bind", "[::1]"],
    ["--datacenters", "dc1", "--forward-timeout", "nan"],
    ["--datacenters", "dc1", "--forward-timeout", "inf"],
    ["--datacenters", "dc1", "--wan-fail-after", "nan"],
    ["--datacenters", "dc1", "--http-port", "-1"],
    ["--datacenters", "dc1", "--peer", "dc2=http://127.0.0.1:notaport"],
    ["--datacenters", ""],
    ["--datacenters", "dc1", "--no-such-flag"],
])
def test_bad_arguments_exit_2_with_one_line(args: list[str]) -> None:
    done = subprocess.run([sys.executable, "-m", "sim.consul", "--http-port", "0", *args],
                          capture_output=True, text=True, timeout=20)
    assert done.returncode == 2, (done.returncode, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "error" in lines[0] and "Traceback" not in done.stderr
    assert done.stdout == ""
