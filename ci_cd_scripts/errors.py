"""The exception family every script turns into a one-line ``error: ...`` message and an exit code.

Raise one of these for any failure a user can act on; `cli.entry` prints ``error: <message>`` on stderr
(with the hint, if any) and returns the class's exit code. Anything else is a bug and keeps its traceback.

Exit codes: 2 for bad input (usage, config, local files), 1 when the operation itself failed
(a remote call, a build, a test run).
"""
from __future__ import annotations


class CICDError(Exception):
    """Base class: an expected failure with a message written for the person running the step."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        """The message (and hint) on a single line, whatever the message contains."""
        text = self.message if not self.hint else f"{self.message} ({self.hint})"
        return " ".join(part.strip() for part in text.splitlines() if part.strip())


class UsageError(CICDError):
    """The command line is wrong (unknown flag, missing argument, bad value). Fix the arguments; see --help."""


class ConfigError(CICDError):
    """The configuration cannot be loaded or resolved. The message names the file, field or variable."""


class InputError(CICDError):
    """A local input (file, folder, path) is missing, unreadable or not what the step expects."""


class OperationFailed(CICDError):
    """The step's work itself failed (a remote call, a build, a test run). Exit code 1."""

    exit_code = 1
