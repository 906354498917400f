"""Spike files from one format to another: ras (text), spk (Auryn binary), npz (numpy).

- ras: ``time_in_seconds neuron_id`` per line (:mod:`superspike.io.ras`).
- spk: Auryn binary records of (time step, id) with the steps per second in the header
  (:mod:`superspike.io.spk`).
- npz: arrays ``times`` (s, float64) and ``ids`` (int64), plus ``dt`` (s) when known.

Times become steps as ``floor(t / dt)`` in float64, as the simulator reads them (MODEL.md 6.2). Steps
become times at the centre of their step, ``(step + 0.5) * dt``, so that converting back gives
the same steps (``step * dt`` itself can floor to the step before: 7 * 1e-4 / 1e-4 < 7).
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

import numpy as np

from superspike.errors import InputFileError, UserError
from superspike.io.files import atomic_write, npy_header, reading
from superspike.io.ras import read_ras, write_ras
from superspike.io.spk import MAX_UINT32, read_spk, read_spk_header, write_spk
from superspike.params import steps as to_steps

FORMATS = ("ras", "spk", "npz")


def spike_format(path: str | Path) -> str:
    """The format of a spike file from its suffix: 'ras', 'spk' or 'npz'."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        raise UserError(f"{path}: unknown spike file format {suffix!r}; use .ras, .spk or .npz")
    return suffix


def spk_dt(path: str | Path) -> float:
    """The time step (s) an spk file declares in its header."""
    return 1.0 / float(read_spk_header(path))


def _check_dt(dt: float | None, where: str, spk: bool = False) -> None:
    if dt is not None and not (math.isfinite(dt) and dt > 0):
        raise UserError(f"{where}: the time step must be a positive number of seconds, got {dt}")
    if spk and dt is not None and not 1 <= round(1.0 / dt) <= MAX_UINT32:
        raise UserError(f"{where}: the time step {dt} s does not fit an spk header (1/dt in 1..{MAX_UINT32})")


MAX_NPZ_SPIKES = 500_000_000  #: most spikes an npz source may declare (12 GB once read and converted)


def _check_sizes(path: str | Path, data: np.lib.npyio.NpzFile) -> None:
    """Each member's declared length from its npy header, before its data is decompressed."""
    for name in data.files:
        try:
            with data.zip.open(name + ".npy" if name + ".npy" in data.zip.namelist() else name) as fh:
                shape, _, _ = npy_header(fh)
        except Exception as exc:  # zip members and npy headers raise many types on foreign bytes
            data.close()
            raise InputFileError(path, f"'{name}' is not a readable array ({type(exc).__name__})") from None
        size = math.prod(shape)
        if size > MAX_NPZ_SPIKES:
            data.close()
            raise InputFileError(path, f"'{name}' declares {size} values, more than {MAX_NPZ_SPIKES}; split the file")


def read_spikes(path: str | Path, dt: float | None = None) -> tuple[np.ndarray, np.ndarray, float | None]:
    """Read any spike file: (times s, ids, dt s or None); spk times are step centres."""
    fmt = spike_format(path)
    if fmt == "ras":
        times, ids, _ = read_ras(path)
        return times, ids, dt
    if fmt == "spk":
        own = spk_dt(path)
        steps, ids = read_spk(path)
        return (steps + 0.5) * own, ids, own
    try:
        with reading(path, "an npz file"):
            loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise InputFileError(path, "is a single .npy array, not an npz archive with 'times' and 'ids'")
        _check_sizes(path, loaded)
        with loaded as data:
            if "times" not in data or "ids" not in data:
                raise InputFileError(path, f"npz spike files hold 'times' and 'ids'; found {', '.join(data.files)}")
            for key in ("times", "ids", "dt"):
                if key in data and data[key].dtype.kind not in "iuf" + ("b" if key == "ids" else ""):
                    raise InputFileError(path, f"'{key}' must hold numbers, got {data[key].dtype} values")
            times = np.asarray(data["times"], np.float64)
            ids = np.asarray(data["ids"])
            stored = None
            if "dt" in data:
                if data["dt"].size != 1:
                    raise InputFileError(path, "'dt' must be one number (the time step in s)")
                stored = float(data["dt"].reshape(()))
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise InputFileError(path, f"not a readable npz file ({exc})") from None
    if stored is not None and not (math.isfinite(stored) and stored > 0):
        raise InputFileError(path, f"'dt' must be a positive number of seconds, got {stored}")
    if times.shape != ids.shape or times.ndim != 1:
        raise InputFileError(path, "'times' and 'ids' must be 1-D arrays of equal length")
    if len(times) and not (np.isfinite(times).all() and times.min() >= 0):
        raise InputFileError(path, "spike times must be finite and non-negative")
    if len(ids) and (ids.min() < 0 or not np.array_equal(ids, np.floor(ids))):
        raise InputFileError(path, "neuron ids must be non-negative integers")
    if len(ids) and ids.max() > MAX_UINT32:
        raise InputFileError(path, f"neuron ids must be below 2**32 (at most {MAX_UINT32}), got {ids.max():.0f}")
    return times, ids.astype(np.int64), stored if stored is not None else dt


def convert(src: str | Path, dst: str | Path, dt: float | None = None) -> int:
    """Convert spike file ``src`` to ``dst`` (formats from the suffixes); return the spike count.

    ``dt`` (s) is the time step for writing spk from ras or npz (default: the npz's own ``dt``,
    else 1e-4 s); an spk source brings its own.
    """
    _check_dt(dt, "--dt")
    fmt = spike_format(dst)
    times, ids, own = read_spikes(src, dt)
    if fmt == "ras":
        write_ras(dst, times, ids, f"converted from {Path(src).name}")
    elif fmt == "spk":
        step = dt or own or 1e-4
        _check_dt(step, "--dt" if dt else str(src), spk=True)
        steps = to_steps(times, step)
        if len(steps) and steps.max() >= 2**32:
            raise UserError(f"{src}: spike times beyond {2**32 * step:.0f} s do not fit an spk file at dt = {step} s")
        order = np.argsort(steps, kind="stable")
        write_spk(dst, steps[order], ids[order], step)
    else:
        extra = {"dt": np.float64(own)} if own is not None else {}
        with atomic_write(dst) as fh:
            np.savez(fh, times=times, ids=ids, **extra)
    return len(times)
