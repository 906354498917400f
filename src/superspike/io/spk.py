"""Auryn's binary spike format (``.spk``), as written by Auryn's ``BinarySpikeMonitor``.

Format: little-endian records of two unsigned 32-bit integers ``(time_step, neuron_id)``, 8 bytes
each, no padding. Record 0 is a header, ``(steps per second, SPK_TAG)``: 10000 for the default
time step of 0.1 ms, and Auryn's format tag 287960081. Records 1, 2, ... are spikes in time
order (non-decreasing steps); the time in s of a spike is ``step / steps_per_second``; ids are
0-based within the group. Auryn's ``aubs`` tool converts these files to text.

:func:`read_spk` checks the header and tag, that the file holds whole records, the time order
and, when given, the time step, the group size and the last step of the run; every problem is
an :class:`~superspike.errors.InputFileError` naming the file, the record and the problem.
:class:`SpkWriter` streams spikes to a file so memory stays flat over long runs.
"""

from __future__ import annotations

import bisect
import math
import os
from pathlib import Path
from typing import BinaryIO

import numpy as np

from superspike.errors import InputFileError
from superspike.io.files import read_bytes, reading, write_atomic

SPK_TAG = 287960081  #: Auryn's format tag for binary spike files
MAX_UINT32 = 2**32 - 1
_RECORD = np.dtype([("step", "<u4"), ("id", "<u4")])
RECORD_BYTES = _RECORD.itemsize  #: 8


def steps_per_second(dt: float) -> int:
    """The header value for time step ``dt`` (s): ``round(1/dt)`` (10000 for 0.1 ms)."""
    if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
        raise ValueError(f"time step must be a positive number of seconds, got {dt!r}")
    sps = int(round(1.0 / dt))
    if not 1 <= sps <= MAX_UINT32:
        raise ValueError(f"time step {dt} s gives {sps} steps per second, outside the spk header's range")
    return sps


def write_spk(path: str | Path, steps: np.ndarray, ids: np.ndarray, dt: float) -> None:
    """Write spikes (time steps and ids, steps non-decreasing) to an spk file for time step ``dt`` (s)."""
    with SpkWriter(path, dt) as w:
        w.write(steps, ids)


class SpkWriter:
    """Streams spikes to an spk file, so memory does not grow with the run's length.

    ``SpkWriter(path, dt, append=True)`` continues an existing file (resume) after checking its
    header; a torn last record (from a crash mid-write) is cut off. Writing in pieces gives the
    same file as writing everything at once.
    """

    def __init__(self, path: str | Path, dt: float, append: bool = False) -> None:
        self.path = Path(path)
        self.steps_per_second = steps_per_second(dt)
        self.last_step = -1
        if append and self.path.exists():
            self._check_header()
            self._fh: BinaryIO = open(self.path, "r+b")
            size = self.path.stat().st_size
            end = size - size % RECORD_BYTES  # drop a torn last record
            if end > RECORD_BYTES:
                self._fh.seek(end - RECORD_BYTES)
                self.last_step = int(np.frombuffer(self._fh.read(RECORD_BYTES), dtype=_RECORD)["step"][0])
            self._fh.seek(end)
            self._fh.truncate()
        else:
            header = np.array([(self.steps_per_second, SPK_TAG)], dtype=_RECORD)
            write_atomic(self.path, header.tobytes())  # never an empty file, even if killed right now
            self._fh = open(self.path, "r+b")
            self._fh.seek(RECORD_BYTES)

    def _check_header(self) -> None:
        with open(self.path, "rb") as fh:
            head = np.frombuffer(fh.read(RECORD_BYTES), dtype=_RECORD)
        if len(head) != 1 or head["id"][0] != SPK_TAG:
            raise InputFileError(self.path, "cannot append: not an spk file (no spk header)")
        if head["step"][0] != self.steps_per_second:
            raise InputFileError(
                self.path,
                f"cannot append: written with {head['step'][0]} steps per second, this run has {self.steps_per_second}",
            )

    def write(self, steps: np.ndarray, ids: np.ndarray) -> None:
        """Append spikes: ``steps`` non-decreasing and not before what was written, both in uint32 range.

        Raises ValueError otherwise (nothing is written then).
        """
        steps = np.asarray(steps)
        ids = np.asarray(ids)
        if steps.shape != ids.shape or steps.ndim != 1:
            raise ValueError(f"steps and ids must be 1-D arrays of equal length, got {steps.shape} and {ids.shape}")
        if len(steps) == 0:
            return
        if steps.dtype.kind not in "iu" or ids.dtype.kind not in "iu":
            raise ValueError(f"steps and ids must be integers in 0..{MAX_UINT32}")
        if len(steps) > 1 and (steps[1:] < steps[:-1]).any():
            raise ValueError("spikes must be written in time order")
        # in time order: steps[0] and steps[-1] bound the steps
        if steps[0] < 0 or steps[-1] > MAX_UINT32 or ids.min() < 0 or ids.max() > MAX_UINT32:
            raise ValueError(f"steps and ids must be integers in 0..{MAX_UINT32}")
        if steps[0] < self.last_step:
            raise ValueError("spikes must be written in time order")
        rec = np.empty((len(steps), 2), dtype="<u4")  # the columns of _RECORD: step, id
        rec[:, 0] = steps
        rec[:, 1] = ids
        self._fh.write(rec.tobytes())
        self.last_step = int(steps[-1])

    def flush(self, sync: bool = True) -> None:
        """Flush buffered records to the operating system and, with ``sync``, to disk."""
        self._fh.flush()
        if sync:
            self.sync()

    def sync(self) -> None:
        """Make the records flushed so far durable (fsync; safe while another thread appends)."""
        os.fsync(self._fh.fileno())

    def tell_records(self) -> int:
        """Number of spike records written so far (header excluded)."""
        return self._fh.tell() // RECORD_BYTES - 1

    def truncate_records(self, n: int) -> None:
        """Keep only the first ``n`` spike records (used when resuming from a checkpoint)."""
        self._fh.flush()
        self._fh.seek((n + 1) * RECORD_BYTES)
        self._fh.truncate()
        if n == 0:
            self.last_step = -1
        else:
            self._fh.seek(n * RECORD_BYTES)
            self.last_step = int(np.frombuffer(self._fh.read(RECORD_BYTES), dtype=_RECORD)["step"][0])

    def close(self) -> None:
        """Close the file."""
        self._fh.close()

    def __enter__(self) -> SpkWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_spk_header(path: str | Path) -> int:
    """The steps per second an spk file's header declares (after checking the tag)."""
    head = _read(path, header_only=True)
    return int(head["step"][0])


def read_spk(
    path: str | Path,
    dt: float | None = None,
    n_neurons: int | None = None,
    max_step: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Read an spk file: (time steps int64, neuron ids int64), in file (= time) order.

    Checks the header and tag, whole records and time order, and, when given, the time step ``dt``
    (s), the group size ``n_neurons`` and the last step of the run ``max_step``. Records are
    numbered from 0 (the header) in messages.
    """
    rec = _read(path)
    path = Path(path)
    sps = int(rec["step"][0])
    if dt is not None and sps != steps_per_second(dt):
        raise InputFileError(path, f"record 0: header says {sps} steps per second, the run has {steps_per_second(dt)}")
    steps = rec["step"][1:].astype(np.int64)
    ids = rec["id"][1:].astype(np.int64)
    if len(steps) > 1:
        back = np.diff(steps) < 0
        if back.any():
            k = int(np.argmax(back)) + 2
            raise InputFileError(
                path, f"record {k}: step {steps[k - 1]} comes after step {steps[k - 2]}; spikes must be in time order"
            )
    if n_neurons is not None and len(ids) and ids.max() >= n_neurons:
        k = int(np.argmax(ids >= n_neurons)) + 1
        raise InputFileError(
            path,
            f"record {k}: neuron id {ids[k - 1]} is outside the group of {n_neurons} neurons (ids 0..{n_neurons - 1})",
        )
    if max_step is not None and len(steps) and steps[-1] > max_step:
        k = int(np.argmax(steps > max_step)) + 1
        raise InputFileError(path, f"record {k}: time step {steps[k - 1]} is after the run's last step {max_step}")
    return steps, ids


def read_spk_window(path: str | Path, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """The spikes of an spk file with steps in ``[start, stop)``: (steps int64, ids int64).

    The file is mapped, not read: the window is found by binary search on the steps (the file is
    in time order), so memory grows with the window, not with the file. Checks the header and
    whole records as :func:`read_spk` does, and the time order inside the window."""
    path = Path(path)
    read_spk_header(path)  # header, tag, a file at all
    size = path.stat().st_size
    if size % RECORD_BYTES:
        raise InputFileError(
            path, f"record {size // RECORD_BYTES} is truncated: the file size {size} is not a multiple of 8 bytes"
        )
    if size == RECORD_BYTES or stop <= start:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    with reading(path, "an spk file"):
        rec = np.memmap(path, dtype=_RECORD, mode="r", offset=RECORD_BYTES)
    try:
        steps = rec["step"]
        # bisect reads about 2 log2(n) records; np.searchsorted would copy the whole column
        lo = bisect.bisect_left(steps, start)
        hi = max(lo, bisect.bisect_left(steps, stop))
        s = np.array(steps[lo:hi], dtype=np.int64)
        i = np.array(rec["id"][lo:hi], dtype=np.int64)
    finally:
        del rec
    if len(s) > 1 and (np.diff(s) < 0).any():
        k = lo + int(np.argmax(np.diff(s) < 0)) + 2
        raise InputFileError(path, f"record {k}: spikes are not in time order")
    return s, i


def _read(path: str | Path, header_only: bool = False) -> np.ndarray:
    path = Path(path)
    raw = read_bytes(path, "an spk file", RECORD_BYTES if header_only else None)
    if len(raw) < RECORD_BYTES:
        raise InputFileError(path, f"too short for an spk header ({len(raw)} bytes, the header has 8)")
    if len(raw) % RECORD_BYTES:
        n_full = len(raw) // RECORD_BYTES
        raise InputFileError(
            path, f"record {n_full} is truncated: the file size {len(raw)} is not a multiple of 8 bytes"
        )
    rec = np.frombuffer(raw, dtype=_RECORD)
    sps, tag = int(rec["step"][0]), int(rec["id"][0])
    if tag != SPK_TAG:
        raise InputFileError(path, f"record 0: wrong format tag {tag} (an spk file has {SPK_TAG}); not an spk file?")
    if sps == 0:
        raise InputFileError(path, "record 0: the header says 0 steps per second")
    return rec
