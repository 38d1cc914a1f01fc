"""Logging for the daemon: one line per record on stderr, secrets masked.

`setup_logging(level, secrets)` configures the root logger. `RedactSecrets` is a filter
that replaces every occurrence of a registered secret (the Consul ACL token, the admin
token) with ``***`` in the rendered message, as a second line of defence: no code path is
supposed to log a token in the first place. Exceptions are rendered on the same line
(type and message), never as a multi-line traceback, unless the level is DEBUG.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable

LEVELS = ("debug", "info", "warning", "error")
MASK = "***"


class RedactSecrets(logging.Filter):
    """Masks each secret (strings of at least 4 characters) in the record's message."""

    def __init__(self, secrets: Iterable[str | None]) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def add(self, secrets: Iterable[str | None]) -> None:
        """Mask these secrets too (e.g. a token read from a file after logging was set up)."""
        known = set(self.secrets) | {s for s in secrets if s and len(s) >= 4}
        self.secrets = sorted(known, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        masked = message
        for secret in self.secrets:
            masked = masked.replace(secret, MASK)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and record.exc_info[1] is not None:
            text = str(record.exc_info[1])
            if any(secret in text for secret in self.secrets):
                record.exc_info = None
                record.msg = f"{record.msg} [exception text withheld: it contained a secret]"
        return True


class OneLineFormatter(logging.Formatter):
    """``time level logger: message`` with exceptions appended as ``(Type: message)``."""

    def __init__(self, verbose_tracebacks: bool) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.verbose = verbose_tracebacks

    def formatException(self, ei: logging._SysExcInfoType) -> str:
        if self.verbose:
            return super().formatException(ei)
        exc = ei[1]
        return f"({type(exc).__name__}: {exc})" if exc is not None else ""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text if self.verbose else text.replace("\n", " ")


def setup_logging(level: str, secrets: Iterable[str | None] = ()) -> RedactSecrets:
    """Configure the root logger for the daemon; returns the filter (tests add secrets)."""
    handler = logging.StreamHandler(sys.stderr)
    numeric = getattr(logging, level.upper(), logging.INFO)
    handler.setFormatter(OneLineFormatter(verbose_tracebacks=numeric <= logging.DEBUG))
    redact = RedactSecrets(secrets)
    handler.addFilter(redact)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    for noisy in ("httpx", "httpcore", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))
    return redact


def register_secrets(*secrets: str | None) -> None:
    """Add secrets to every `RedactSecrets` filter on the root logger's handlers.

    The daemon learns some secrets only after logging is configured (the Consul token from
    CONSUL_HTTP_TOKEN_FILE, the admin token from --admin-token-file); it registers them here.
    """
    for handler in logging.getLogger().handlers:
        for flt in handler.filters:
            if isinstance(flt, RedactSecrets):
                flt.add(secrets)
