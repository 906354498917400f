"""The run directory: config.toml, learning_curve.tsv, one Auryn spike file per group
(``<group name>.spk``: ``input.spk``, ``hidden0.spk``, ``output.spk`` for a chain), weights.npz
(``w/<connection>``, ``b/<feedback edge>``), and target.ras (the target pattern as used, one
loop period). docs/FORMATS.md describes each file."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from superspike.errors import ConfigError
from superspike.io import SpkWriter, atomic_write, save_weights, write_ras
from superspike.network import Network
from superspike.run.config import RunConfig, save_config
from superspike.task import Task

CURVE = "learning_curve.tsv"


def prepare_directory(path: str | Path, force: bool = False, resume: bool = False) -> Path:
    """Create a fresh run directory. An existing non-empty one is refused unless ``force`` (it is
    then emptied, but only if it looks like a run directory) or ``resume``."""
    path = Path(path)
    try:
        if path.exists() and not path.is_dir():
            raise ConfigError("out", f"{path} exists and is not a directory")
        if path.exists() and any(path.iterdir()) and not resume:
            if not force:
                raise ConfigError("out", f"{path} exists; pass --resume to continue it or --force to overwrite it")
            if not (path / "config.toml").exists():
                raise ConfigError("out", f"{path} is not a run directory (no config.toml); refusing to empty it")
            shutil.rmtree(path)
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".superspike-write-test"
        probe.touch()  # fail now, not after the simulation has run
        probe.unlink()
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(path) else ""
        raise ConfigError("out", f"cannot use {path} as the run directory{where}: {exc.strerror or exc}") from None
    return path


class RunDirectory:
    """Writes a run's outputs while it runs (spikes are streamed, memory stays flat)."""

    def __init__(self, path: Path, names: list[str], dt: float, append: bool = False) -> None:
        self.path = path
        self.names = names
        self.writers = {n: SpkWriter(path / f"{n}.spk", dt, append=append) for n in names}
        self.curve_path = path / CURVE

    def write_setup(self, cfg: RunConfig, task: Task) -> None:
        """The resolved configuration and the target pattern."""
        save_config(cfg, self.path / "config.toml")
        write_ras(
            self.path / "target.ras",
            task.target.times,
            task.target.ids,
            f"neurons {task.nout}, time grid {task.grid:.6f}s\ntarget of task {task.name}",
        )

    def __call__(self, start: int, stop: int, spikes: dict, target: tuple) -> None:
        for name, writer in self.writers.items():
            s, i = spikes[name]
            writer.write(s, i)

    def curve_row(self, row: dict[str, float | int]) -> None:
        """Append one cost line to learning_curve.tsv (header first)."""
        new = not self.curve_path.exists()
        with open(self.curve_path, "a") as fh:
            if new:
                fh.write("\t".join(row) + "\n")
            fh.write("\t".join(_fmt(v) for v in row.values()) + "\n")

    def truncate(self, curve_rows: int, spk_records: dict[str, int]) -> None:
        """Cut the files back to a checkpoint: ``curve_rows`` cost lines, so many spikes per group
        (a run killed after its checkpoint may have written more)."""
        for name, n in spk_records.items():
            self.writers[name].truncate_records(n)
        if self.curve_path.exists():
            lines = self.curve_path.read_text().splitlines(keepends=True)
            keep = lines[: 1 + curve_rows] if curve_rows else []
            with atomic_write(self.curve_path, "w") as fh:
                fh.write("".join(keep))

    def save_weights(self, net: Network) -> None:
        """weights.npz: ``w/<connection>`` [pre, post] and ``b/<feedback edge>`` [src, dst] (float32)."""
        save_weights(self.path / "weights.npz", net.weights, net.feedback)

    def flush(self) -> None:
        """Push streamed spikes to disk."""
        for w in self.writers.values():
            w.flush()

    def close(self) -> None:
        """Close the spike files."""
        for w in self.writers.values():
            w.close()


def _fmt(v: float | int) -> str:
    if isinstance(v, (int, np.integer)):
        return str(v)
    return f"{v:.6g}"


def read_curve_rows(path: str | Path) -> list[dict[str, float]]:
    """The rows of a run's learning_curve.tsv as dicts (numbers as float; an empty list if none)."""
    path = Path(path)
    if path.is_dir():
        path = path / CURVE
    if not path.exists():
        return []
    lines = [line.split("\t") for line in path.read_text().splitlines() if line.strip()]
    if not lines:
        return []
    header = lines[0]
    return [
        {k: (int(v) if k == "block" else float(v)) for k, v in zip(header, row, strict=True)}
        for row in lines[1:]
        if len(row) == len(header)
    ]


def read_curve(path: str | Path) -> dict[str, np.ndarray]:
    """Read a learning_curve.tsv into columns."""
    path = Path(path)
    if path.is_dir():
        path = path / CURVE
    data = np.genfromtxt(path, delimiter="\t", names=True, dtype=float, ndmin=1)
    return {name: np.atleast_1d(data[name]) for name in data.dtype.names}
