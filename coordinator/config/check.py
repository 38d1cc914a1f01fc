"""`coordinator check-config`: validate a topology file and explain it."""

from __future__ import annotations

from typing import TextIO

from coordinator.config.errors import ConfigError
from coordinator.config.explain import explain_topology
from coordinator.config.load import load_topology_report

EXIT_OK = 0
EXIT_INVALID = 2


def check_config_main(path: str, out: TextIO, err: TextIO) -> int:
    """Validate `path`. Returns 0 and prints the explanation to `out` when valid (warnings,
    one per line prefixed `warning: `, go to `err`); returns 2 and prints every error, one
    per line, to `err` when not. Never raises for a bad file.
    """
    try:
        loaded = load_topology_report(path)
    except ConfigError as exc:
        for line in exc.lines:
            print(line, file=err)
        print(f"{path}: invalid ({len(exc.lines)} problem{'s' if len(exc.lines) != 1 else ''})", file=err)
        return EXIT_INVALID
    for warning in loaded.warnings:
        print(f"warning: {warning}", file=err)
    print(f"{path}: valid", file=out)
    print(explain_topology(loaded.topology), file=out)
    return EXIT_OK
