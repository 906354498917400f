"""ras spike rasters: text, one spike per line, ``time_in_seconds neuron_id``, any order.

Lines starting with ``#`` are comments. The ssbm benchmark files may carry a header comment such
as ``# neurons 100, temporal resolution 0.050000s, time grid 3.500000s``; its ``neurons`` and
``time grid`` values are parsed and offered as defaults (:class:`RasHeader`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from superspike.errors import InputFileError

_GRID = re.compile(r"time grid\s+([0-9.eE+-]+)\s*s")
_NEURONS = re.compile(r"neurons\s+(\d+)")


@dataclass(frozen=True)
class RasHeader:
    """What a ras file's comment lines declare (None where they say nothing)."""

    neurons: int | None = None
    grid: float | None = None  #: loop period, s


def read_ras(path: str | Path) -> tuple[np.ndarray, np.ndarray, RasHeader]:
    """Read a ras file: spike times (float64, s) and neuron ids (int64), in file order, and header.

    Raises InputFileError (file and line) for an empty file, a wrong number of columns, a
    non-numeric field, a negative, NaN or infinite time, or a negative or non-integer id.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise InputFileError(path, "no such file") from None
    except IsADirectoryError:
        raise InputFileError(path, "is a directory, not a ras file") from None
    except UnicodeDecodeError:
        raise InputFileError(path, "not a text file (ras files are text: 'time id' per line)") from None
    except OSError as exc:
        raise InputFileError(path, f"cannot be read: {exc.strerror}") from None

    neurons = grid = None
    time_tokens: list[str] = []
    id_tokens: list[str] = []
    line_numbers: list[int] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            if (m := _GRID.search(stripped)) is not None:
                grid = float(m.group(1))
            if (m := _NEURONS.search(stripped)) is not None:
                neurons = int(m.group(1))
            continue
        parts = stripped.split()
        if len(parts) != 2:
            raise InputFileError(path, f"expected 2 columns (time in s, neuron id), found {len(parts)}", number)
        time_tokens.append(parts[0])
        id_tokens.append(parts[1])
        line_numbers.append(number)
    if not time_tokens:
        raise InputFileError(path, "empty: no spikes (expected 'time_in_seconds neuron_id' lines)")

    times = _parse_floats(path, time_tokens, line_numbers, "time")
    raw_ids = _parse_floats(path, id_tokens, line_numbers, "neuron id")
    bad = ~np.isfinite(times) | (times < 0)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise InputFileError(
            path,
            f"time {time_tokens[k]} is not a finite non-negative number of seconds",
            line_numbers[k],
        )
    bad = ~np.isfinite(raw_ids) | (raw_ids < 0) | (raw_ids != np.floor(raw_ids))
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise InputFileError(path, f"neuron id {id_tokens[k]} is not a non-negative integer", line_numbers[k])
    return times, raw_ids.astype(np.int64), RasHeader(neurons=neurons, grid=grid)


def ras_line_numbers(path: str | Path) -> np.ndarray:
    """Line number (1-based) of each spike of a ras file, in the order :func:`read_ras` returns."""
    numbers = []
    with open(path) as fh:
        for number, line in enumerate(fh, start=1):
            s = line.strip()
            if s and not s.startswith("#"):
                numbers.append(number)
    return np.asarray(numbers, dtype=np.int64)


def write_ras(path: str | Path, times: np.ndarray, ids: np.ndarray, header: str | None = None) -> None:
    """Write spikes as a ras file, sorted by time (stable), times with 6 decimals (1 us)."""
    times = np.asarray(times, dtype=np.float64)
    ids = np.asarray(ids, dtype=np.int64)
    order = np.argsort(times, kind="stable")
    with open(path, "w") as fh:
        if header:
            for hline in header.splitlines():
                fh.write(f"# {hline}\n")
        for t, i in zip(times[order], ids[order], strict=True):
            fh.write(f"{t:.6f} {i}\n")


def _parse_floats(path: Path, tokens: list[str], lines: list[int], what: str) -> np.ndarray:
    try:
        return np.array(tokens, dtype=np.float64)
    except ValueError:
        for token, number in zip(tokens, lines, strict=True):
            try:
                float(token)
            except ValueError:
                raise InputFileError(path, f"{what} {token!r} is not a number", number) from None
        raise  # pragma: no cover - numpy and float() disagree


def is_finite_number(x: float) -> bool:
    """True for a finite float (helper for validation messages)."""
    return isinstance(x, (int, float)) and math.isfinite(x)
