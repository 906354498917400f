"""Auryn's binary spike format (``.spk``), as written by Auryn's BinarySpikeMonitor.

Little-endian records of two uint32, ``(time_step, neuron_id)``. The first record is a header:
``(steps per second, SPK_TAG)``. The others are spikes in time order; time in s = step / (steps
per second). Ids are 0-based within the group. Auryn's ``aubs`` tool reads these files.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

import numpy as np

from superspike.errors import InputFileError

SPK_TAG = 287960081  #: Auryn's format tag for binary spike files
_RECORD = np.dtype([("step", "<u4"), ("id", "<u4")])


def write_spk(path: str | Path, steps: np.ndarray, ids: np.ndarray, dt: float) -> None:
    """Write spikes (time steps and ids, in time order) to an spk file."""
    with SpkWriter(path, dt) as w:
        w.write(steps, ids)


class SpkWriter:
    """Streams spikes to an spk file, so memory does not grow with the run's length.

    ``SpkWriter(path, dt, append=True)`` continues an existing file (resume) after checking its
    header.
    """

    def __init__(self, path: str | Path, dt: float, append: bool = False) -> None:
        self.path = Path(path)
        self.steps_per_second = int(round(1.0 / dt))
        if append and self.path.exists():
            self._check_header()
            self._fh: BinaryIO = open(self.path, "r+b")
            size = self.path.stat().st_size
            self._fh.seek(size - size % _RECORD.itemsize)  # drop a torn last record
            self._fh.truncate()
        else:
            self._fh = open(self.path, "wb")
            header = np.array([(self.steps_per_second, SPK_TAG)], dtype=_RECORD)
            self._fh.write(header.tobytes())
        self.last_step = -1

    def _check_header(self) -> None:
        with open(self.path, "rb") as fh:
            head = np.frombuffer(fh.read(_RECORD.itemsize), dtype=_RECORD)
        if len(head) != 1 or head["id"][0] != SPK_TAG or head["step"][0] != self.steps_per_second:
            raise InputFileError(self.path, "cannot append: not an spk file of this time step")

    def write(self, steps: np.ndarray, ids: np.ndarray) -> None:
        """Append spikes; ``steps`` must be non-decreasing and not before what was written."""
        if len(steps) == 0:
            return
        rec = np.empty(len(steps), dtype=_RECORD)
        rec["step"] = steps
        rec["id"] = ids
        self._fh.write(rec.tobytes())
        self.last_step = int(steps[-1])

    def flush(self) -> None:
        """Flush buffered records to the operating system and to disk."""
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def tell_records(self) -> int:
        """Number of spike records written so far (header excluded)."""
        return self._fh.tell() // _RECORD.itemsize - 1

    def truncate_records(self, n: int) -> None:
        """Keep only the first ``n`` spike records (used when resuming from a checkpoint)."""
        self._fh.flush()
        self._fh.seek((n + 1) * _RECORD.itemsize)
        self._fh.truncate()

    def close(self) -> None:
        """Close the file."""
        self._fh.close()

    def __enter__(self) -> SpkWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_spk(
    path: str | Path,
    dt: float | None = None,
    n_neurons: int | None = None,
    max_step: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Read an spk file: (time steps int64, neuron ids int64).

    Checks the header and tag, whole records, time order, and, when given, the time step ``dt``
    (s), the group size ``n_neurons`` and the last step of the run ``max_step``.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputFileError(path, "no such file") from None
    except IsADirectoryError:
        raise InputFileError(path, "is a directory, not an spk file") from None
    if len(raw) < _RECORD.itemsize:
        raise InputFileError(path, "too short for an spk header (8 bytes)")
    if len(raw) % _RECORD.itemsize:
        n_full = len(raw) // _RECORD.itemsize
        raise InputFileError(
            path,
            f"truncated record {n_full} (file size {len(raw)} is not a multiple of 8 bytes)",
            n_full,
        )
    rec = np.frombuffer(raw, dtype=_RECORD)
    sps, tag = int(rec["step"][0]), int(rec["id"][0])
    if tag != SPK_TAG:
        raise InputFileError(path, f"wrong format tag {tag} in the header (expected {SPK_TAG})", 0)
    if dt is not None and sps != int(round(1.0 / dt)):
        raise InputFileError(path, f"header says {sps} steps per second, the run has {int(round(1.0 / dt))}", 0)
    steps = rec["step"][1:].astype(np.int64)
    ids = rec["id"][1:].astype(np.int64)
    if len(steps) > 1 and (np.diff(steps) < 0).any():
        k = int(np.flatnonzero(np.diff(steps) < 0)[0]) + 2
        raise InputFileError(path, "spikes are not in time order", k)
    if n_neurons is not None and len(ids) and ids.max() >= n_neurons:
        k = int(np.flatnonzero(ids >= n_neurons)[0]) + 1
        raise InputFileError(path, f"neuron id {ids[k - 1]} outside the group of {n_neurons} neurons", k)
    if max_step is not None and len(steps) and steps.max() > max_step:
        k = int(np.flatnonzero(steps > max_step)[0]) + 1
        raise InputFileError(path, f"time step {steps[k - 1]} after the end of the run", k)
    return steps, ids
