"""ConsulConfig.from_env: Consul CLI environment conventions, token file, masking."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from coordinator.consul.config import ConsulConfig, ConsulConfigError

TOKEN = "b1gs3cr3t-0000-1111-2222-333344445555"


def no_file(path: str) -> str:
    raise AssertionError(f"token file {path} must not be read")


def test_defaults() -> None:
    cfg = ConsulConfig.from_env({})
    assert cfg.address == "http://127.0.0.1:8500"
    assert cfg.token is None
    assert cfg.uds is None
    assert cfg.verify is True
    assert not cfg.is_https


@pytest.mark.parametrize(
    ("env", "address"),
    [
        ({"CONSUL_HTTP_ADDR": "10.0.0.7:8500"}, "http://10.0.0.7:8500"),
        ({"CONSUL_HTTP_ADDR": "10.0.0.7:8501", "CONSUL_HTTP_SSL": "true"}, "https://10.0.0.7:8501"),
        ({"CONSUL_HTTP_ADDR": "10.0.0.7:8501", "CONSUL_HTTP_SSL": "1"}, "https://10.0.0.7:8501"),
        ({"CONSUL_HTTP_ADDR": "10.0.0.7:8500", "CONSUL_HTTP_SSL": "false"}, "http://10.0.0.7:8500"),
        ({"CONSUL_HTTP_ADDR": "https://consul.local:8501"}, "https://consul.local:8501"),
        ({"CONSUL_HTTP_ADDR": "http://consul.local:8500/", "CONSUL_HTTP_SSL": "true"}, "http://consul.local:8500"),
        ({"CONSUL_HTTP_SSL": "TRUE"}, "https://127.0.0.1:8500"),
        ({"CONSUL_HTTP_ADDR": ""}, "http://127.0.0.1:8500"),
    ],
)
def test_address(env: dict[str, str], address: str) -> None:
    assert ConsulConfig.from_env(env).address == address


def test_unix_socket() -> None:
    cfg = ConsulConfig.from_env({"CONSUL_HTTP_ADDR": "unix:///var/run/consul.sock"})
    assert cfg.uds == "/var/run/consul.sock"
    assert cfg.address == "http://localhost"


def test_address_override_wins() -> None:
    cfg = ConsulConfig.from_env({"CONSUL_HTTP_ADDR": "10.0.0.7:8500"}, address_override="127.0.0.2:8500")
    assert cfg.address == "http://127.0.0.2:8500"


@pytest.mark.parametrize(
    "env",
    [
        {"CONSUL_HTTP_ADDR": "ftp://x:1"},
        {"CONSUL_HTTP_ADDR": "http://"},
        {"CONSUL_HTTP_ADDR": "host:1/path"},
        {"CONSUL_HTTP_ADDR": "unix://"},
        {"CONSUL_HTTP_SSL": "yes"},
        {"CONSUL_HTTP_SSL_VERIFY": "nope"},
        {"CONSUL_CLIENT_CERT": "/c.pem"},
        {"CONSUL_CLIENT_KEY": "/k.pem"},
    ],
)
def test_bad_values_raise_one_line_error(env: dict[str, str]) -> None:
    with pytest.raises(ConsulConfigError) as info:
        ConsulConfig.from_env(env)
    assert "\n" not in str(info.value)
    assert str(info.value)


def test_tls_settings() -> None:
    cfg = ConsulConfig.from_env(
        {
            "CONSUL_HTTP_SSL": "true",
            "CONSUL_CACERT": "/etc/consul/ca.pem",
            "CONSUL_CAPATH": "/etc/consul/cas",
            "CONSUL_CLIENT_CERT": "/etc/consul/cli.pem",
            "CONSUL_CLIENT_KEY": "/etc/consul/cli-key.pem",
            "CONSUL_TLS_SERVER_NAME": "server.dc1.consul",
            "CONSUL_HTTP_SSL_VERIFY": "false",
        }
    )
    assert cfg.is_https
    assert (cfg.ca_file, cfg.ca_path) == ("/etc/consul/ca.pem", "/etc/consul/cas")
    assert (cfg.client_cert, cfg.client_key) == ("/etc/consul/cli.pem", "/etc/consul/cli-key.pem")
    assert cfg.tls_server_name == "server.dc1.consul"
    assert cfg.verify is False


def test_ssl_context_verify_off_and_missing_ca() -> None:
    ctx = ConsulConfig(address="https://127.0.0.1:8501", verify=False).ssl_context()
    assert ctx.verify_mode == ssl.CERT_NONE
    assert ctx.check_hostname is False
    assert ConsulConfig(address="https://127.0.0.1:8501").ssl_context().verify_mode == ssl.CERT_REQUIRED
    with pytest.raises(ConsulConfigError):
        ConsulConfig(address="https://127.0.0.1:8501", ca_file="/nonexistent/ca.pem").ssl_context()


def test_token_from_env_wins_over_file() -> None:
    cfg = ConsulConfig.from_env(
        {"CONSUL_HTTP_TOKEN": TOKEN, "CONSUL_HTTP_TOKEN_FILE": "/t"}, read_file=no_file
    )
    assert cfg.token == TOKEN


def test_token_file_is_stripped() -> None:
    seen: list[str] = []

    def reader(path: str) -> str:
        seen.append(path)
        return f"  {TOKEN}\n"

    cfg = ConsulConfig.from_env({"CONSUL_HTTP_TOKEN_FILE": "/run/secrets/consul"}, read_file=reader)
    assert cfg.token == TOKEN
    assert seen == ["/run/secrets/consul"]


def test_token_file_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    assert ConsulConfig.from_env({"CONSUL_HTTP_TOKEN_FILE": str(path)}).token == TOKEN


def test_empty_token_file_means_no_token() -> None:
    assert ConsulConfig.from_env({"CONSUL_HTTP_TOKEN_FILE": "/t"}, read_file=lambda p: " \n").token is None


def test_unreadable_token_file() -> None:
    def reader(path: str) -> str:
        raise FileNotFoundError(2, "No such file or directory", path)

    with pytest.raises(ConsulConfigError) as info:
        ConsulConfig.from_env({"CONSUL_HTTP_TOKEN_FILE": "/missing"}, read_file=reader)
    assert "/missing" in str(info.value)
    assert "\n" not in str(info.value)


def test_token_is_masked_everywhere() -> None:
    cfg = ConsulConfig.from_env({"CONSUL_HTTP_TOKEN": TOKEN, "CONSUL_HTTP_ADDR": "127.0.0.1:8500"})
    assert cfg.token == TOKEN
    for text in (repr(cfg), str(cfg), f"{cfg}", f"{cfg!r}", repr([cfg])):
        assert TOKEN not in text
        assert "***" in text
    assert "token=None" in repr(ConsulConfig())
    assert cfg.with_token(None).token is None
