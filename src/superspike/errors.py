"""User-facing errors.

A :class:`UserError` is a mistake of the user (bad file, bad option, bad configuration). The
command line prints its message as one line and exits with status 2; no traceback. Messages
name the file, the line or key, and the problem.
"""

from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """A mistake in the user's input: shown as one line, never as a traceback."""


class InputFileError(UserError):
    """A problem at a place in a file: ``FILE:LINE: problem``."""

    def __init__(self, path: str | Path, problem: str, line: int | None = None) -> None:
        where = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {problem}")
        self.path = str(path)
        self.line = line
        self.problem = problem


class OutputFileError(UserError):
    """A file that cannot be written (a full disk, permissions): ``FILE: problem``."""

    def __init__(self, path: str | Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem


class ConfigError(UserError):
    """A problem with a configuration key or option: ``SOURCE: key: problem``."""

    def __init__(self, key: str, problem: str, source: str | None = None) -> None:
        prefix = f"{source}: " if source else ""
        super().__init__(f"{prefix}{key}: {problem}")
        self.key = key
        self.problem = problem


class SimulationError(Exception):
    """The simulation became numerically invalid (NaN or infinite state)."""


class RunInterrupted(Exception):
    """A run stopped by SIGINT or SIGTERM after writing a checkpoint; ``signum`` says which."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum
