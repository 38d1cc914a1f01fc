"""Config problems as one-line, located messages.

Every problem the loader finds is an `Issue`: file, optional 1-based line, optional dotted
key path, message. `Issue.format()` renders the single line users see:
`<file>:<line>: <dotted.path>: <what is wrong>` (parts that are unknown are left out).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Issue:
    """One located problem (an error or a warning). Ordered by file, then line."""

    file: str
    line: int | None
    path: str | None
    message: str

    def format(self) -> str:
        """The one-line rendering: `file:line: path: message`."""
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        if self.path:
            return f"{where}: {self.path}: {self.message}"
        return f"{where}: {self.message}"


class ConfigError(ValueError):
    """The topology file is invalid.

    `lines` holds every problem, one formatted line each, sorted by line number; `str()` is
    the first of them. Never empty.
    """

    def __init__(self, issues: list[Issue]) -> None:
        if not issues:
            raise ValueError("ConfigError needs at least one issue")
        self.issues: list[Issue] = sorted(issues, key=lambda i: i.line or 0)
        self.lines: list[str] = [issue.format() for issue in self.issues]
        super().__init__(self.lines[0])

    def __str__(self) -> str:
        return self.lines[0]
