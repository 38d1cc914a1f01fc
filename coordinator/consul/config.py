"""How to reach the local Consul agent: address, ACL token, TLS. Built from the environment
with Consul's CLI/SDK conventions (api/api.go `DefaultConfig` + `NewClient`):

    CONSUL_HTTP_ADDR        host:port, http://host:port, https://host:port or unix:///path
                            (default 127.0.0.1:8500); an explicit scheme wins over CONSUL_HTTP_SSL
    CONSUL_HTTP_SSL         true -> https when the address has no scheme
    CONSUL_HTTP_TOKEN       ACL token (wins over the token file)
    CONSUL_HTTP_TOKEN_FILE  file holding the token; its content is whitespace-stripped
    CONSUL_CACERT / CONSUL_CAPATH / CONSUL_CLIENT_CERT / CONSUL_CLIENT_KEY
    CONSUL_TLS_SERVER_NAME  SNI and certificate host name to verify
    CONSUL_HTTP_SSL_VERIFY  false -> do not verify the server certificate

Deviation from the Go SDK, on purpose: an unparsable boolean or an unknown scheme raises
`ConsulConfigError` (the SDK logs a warning and, for SSL_VERIFY, silently stops verifying).

Invariant: the token never appears in repr(), str() or any error message of this module.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_ADDRESS = "127.0.0.1:8500"
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


class ConsulConfigError(ValueError):
    """A bad Consul connection setting. The message is one line and never holds a token."""


def _parse_bool(name: str, value: str) -> bool:
    """Go's strconv.ParseBool."""
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConsulConfigError(f"{name}: expected a boolean (true/false/1/0), got {value!r}")


def _read_text(path: str) -> str:
    return Path(path).read_text(encoding="utf-8")


@dataclass(frozen=True)
class ConsulConfig:
    """Connection settings for AsyncConsul.

    `address` is a base URL ("http://127.0.0.1:8500"); for a unix socket it is
    "http://localhost" and `uds` holds the socket path. `token` is masked in repr.
    """

    address: str = "http://" + DEFAULT_ADDRESS
    token: str | None = field(default=None, repr=False)
    uds: str | None = None
    ca_file: str | None = None
    ca_path: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    tls_server_name: str | None = None
    verify: bool = True

    def __post_init__(self) -> None:
        if (self.client_cert is None) != (self.client_key is None):
            raise ConsulConfigError("CONSUL_CLIENT_CERT and CONSUL_CLIENT_KEY must be set together")

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{name}={value!r}"
            for name, value in (
                ("address", self.address),
                ("uds", self.uds),
                ("ca_file", self.ca_file),
                ("ca_path", self.ca_path),
                ("client_cert", self.client_cert),
                ("client_key", self.client_key),
                ("tls_server_name", self.tls_server_name),
                ("verify", self.verify),
            )
            if value is not None
        )
        token = "'***'" if self.token else "None"
        return f"ConsulConfig({shown}, token={token})"

    __str__ = __repr__

    @property
    def is_https(self) -> bool:
        return self.address.startswith("https://")

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str],
        *,
        address_override: str | None = None,
        read_file: Callable[[str], str] | None = None,
    ) -> ConsulConfig:
        """Build a config from CONSUL_* variables (see the module docstring).

        `address_override` (e.g. a --consul-addr flag) replaces CONSUL_HTTP_ADDR and is
        parsed the same way. `read_file` reads CONSUL_HTTP_TOKEN_FILE (default: the file
        system); it is only called when no CONSUL_HTTP_TOKEN is set.
        """
        env = {k: v for k, v in environ.items() if k.startswith("CONSUL_") and v != ""}
        ssl_on = _parse_bool("CONSUL_HTTP_SSL", env["CONSUL_HTTP_SSL"]) if "CONSUL_HTTP_SSL" in env else False
        verify = True
        if "CONSUL_HTTP_SSL_VERIFY" in env:
            verify = _parse_bool("CONSUL_HTTP_SSL_VERIFY", env["CONSUL_HTTP_SSL_VERIFY"])
        raw_addr = address_override or env.get("CONSUL_HTTP_ADDR", DEFAULT_ADDRESS)
        address, uds = _parse_address(raw_addr, https=ssl_on)
        token = env.get("CONSUL_HTTP_TOKEN")
        if token is None and "CONSUL_HTTP_TOKEN_FILE" in env:
            token = _token_from_file(env["CONSUL_HTTP_TOKEN_FILE"], read_file or _read_text)
        return cls(
            address=address,
            token=token,
            uds=uds,
            ca_file=env.get("CONSUL_CACERT"),
            ca_path=env.get("CONSUL_CAPATH"),
            client_cert=env.get("CONSUL_CLIENT_CERT"),
            client_key=env.get("CONSUL_CLIENT_KEY"),
            tls_server_name=env.get("CONSUL_TLS_SERVER_NAME"),
            verify=verify,
        )

    def with_token(self, token: str | None) -> ConsulConfig:
        return replace(self, token=token)

    def ssl_context(self) -> ssl.SSLContext:
        """A client TLS context from the CA/cert settings. Raises ConsulConfigError when a
        file is missing or unreadable."""
        try:
            ctx = ssl.create_default_context(cafile=self.ca_file, capath=self.ca_path)
            if self.client_cert is not None:
                ctx.load_cert_chain(self.client_cert, self.client_key)
        except (OSError, ssl.SSLError) as exc:
            raise ConsulConfigError(f"TLS setup failed: {type(exc).__name__}: {exc}") from exc
        if not self.verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx


def _parse_address(raw: str, *, https: bool) -> tuple[str, str | None]:
    """(base URL, unix socket path or None) from a Consul address string."""
    text = raw.strip()
    if "://" in text:
        scheme, rest = text.split("://", 1)
        if scheme == "unix":
            if not rest:
                raise ConsulConfigError("CONSUL_HTTP_ADDR: unix:// needs a socket path")
            return ("https://localhost" if https else "http://localhost"), rest
        if scheme not in ("http", "https"):
            raise ConsulConfigError(f"CONSUL_HTTP_ADDR: unknown protocol scheme {scheme!r}")
    else:
        scheme, rest = ("https" if https else "http"), text
    host = rest.rstrip("/")
    if not host or "/" in host or any(c.isspace() for c in host) or not _valid_host_port(host):
        raise ConsulConfigError(f"CONSUL_HTTP_ADDR: expected host:port, got {raw!r}")
    return f"{scheme}://{host}", None


def _valid_host_port(text: str) -> bool:
    """`host`, `host:port`, `[v6]` or `[v6]:port` with a non-empty host and a port in 1..65535."""
    try:
        parts = urlsplit("//" + text)
        port = parts.port
    except ValueError:
        return False
    if not parts.hostname or parts.username is not None or parts.password is not None:
        return False
    return not text.endswith(":") and port != 0


def _token_from_file(path: str, read_file: Callable[[str], str]) -> str | None:
    try:
        content = read_file(path)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConsulConfigError(f"CONSUL_HTTP_TOKEN_FILE: cannot read {path!r}: {reason}") from exc
    return content.strip() or None
