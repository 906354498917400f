"""The run directory: config.toml, learning_curve.tsv, one Auryn spike file per group
(``<group name>.spk``: ``input.spk``, ``hidden0.spk``, ``output.spk`` for a chain), weights.npz
(``w/<connection>``, ``b/<feedback edge>``), and target.ras (the target pattern as used, one
loop period). docs/FORMATS.md describes each file.

Ownership and safety (issue 14):

- A run writes :data:`MARKER` first: it marks the directory as a superspike run's, lists the
  groups (so the spike files it owns are known) and keeps the run's configuration with its
  digest, so a ``config.toml`` edited before ``--resume`` is caught (:func:`check_config`).
- ``--force`` removes only the files a run writes (:func:`run_files`), and refuses a directory
  without the marker, one holding anything else, and the working directory or a parent of it.
- :class:`RunLock`: one writer at a time (``filelock`` on :data:`LOCK`, the holder's process id
  and host in :data:`HOLDER`, so a second process is told who holds it).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np

from superspike.errors import ConfigError, InputFileError
from superspike.io import SpkWriter, atomic_write, save_weights, write_atomic, write_ras
from superspike.io.spk import RECORD_BYTES
from superspike.network import Network
from superspike.run.checkpoint import CHECKPOINT
from superspike.run.config import RunConfig, config_from_dict, config_to_dict, config_to_toml, save_config
from superspike.task import Task

CURVE = "learning_curve.tsv"
MARKER = "superspike-run.json"  #: written first: this directory is a superspike run's
LOCK = ".superspike.lock"  #: held (flock, via filelock) by the one process writing the run
HOLDER = ".superspike.lock.holder"  #: process id, host and start of the lock's holder
#: spike records of one group kept in memory before they are written (128 KB a group at most)
BUFFER_RECORDS = 1 << 14
#: every file a run (or a command on it) writes into its directory, besides ``<group>.spk``;
#: sweep_status.json is written by run.sweep, plot.png and training.gif by plot and animate
OWN_FILES = (
    MARKER,
    "config.toml",
    "target.ras",
    CURVE,
    CHECKPOINT,
    "weights.npz",
    "sweep_status.json",
    "plot.png",
    "training.gif",
    LOCK,
    HOLDER,
)
_LOCK_FILES = (LOCK, HOLDER)
_TMP = re.compile(r"^\.(.+)\.\d+\.tmp$")  # superspike.io.files.atomic_write's temporary files
_NAME = re.compile(r"^[A-Za-z0-9_.+-]+$")


def _canonical(cfg: RunConfig) -> dict[str, Any]:
    """The configuration as config.toml gives it back (written, read, as data)."""
    import tomllib

    return config_to_dict(config_from_dict(tomllib.loads(config_to_toml(cfg)), "config"))


def _digested(data: dict[str, Any]) -> dict[str, Any]:
    # the engine is left out: --resume --engine may change it (both engines give the same result)
    return {k: v for k, v in data.items() if k != "engine"}


def config_digest(data: dict[str, Any]) -> str:
    """SHA-256 of canonical configuration data (:func:`_canonical`), the engine left out."""
    return hashlib.sha256(json.dumps(_digested(data), sort_keys=True).encode()).hexdigest()


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: data}


def read_marker(path: Path) -> dict[str, Any] | None:
    """The marker of run directory ``path`` (None if it has none or it is not one of ours)."""
    try:
        data = json.loads((path / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("superspike") != "run directory":
        return None
    return data


def write_marker(path: Path, groups: list[str], cfg: RunConfig) -> None:
    """Mark ``path`` as a run directory (the first file a run writes)."""
    data = _canonical(cfg)
    marker = {
        "superspike": "run directory",
        "format": 1,
        "groups": groups,
        "config_sha256": config_digest(data),
        "config": data,
    }
    write_atomic(path / MARKER, json.dumps(marker, indent=1) + "\n")


def check_config(path: Path, cfg: RunConfig, marker: dict[str, Any] | None) -> None:
    """Refuse to resume ``path`` if its config.toml no longer gives the configuration the run
    began with (a run directory from before the marker is not checked)."""
    if marker is None or not isinstance(marker.get("config_sha256"), str):
        return
    now = _canonical(cfg)
    if config_digest(now) == marker["config_sha256"]:
        return
    old, new = _flat(_digested(marker.get("config") or {})), _flat(_digested(now))
    keys = [k for k in sorted(set(old) | set(new)) if old.get(k, None) != new.get(k, None)]
    shown = ", ".join(f"{k} ({_show(old.get(k))} -> {_show(new.get(k))})" for k in keys[:5])
    shown += f" and {len(keys) - 5} more" if len(keys) > 5 else ""
    raise ConfigError(
        "resume",
        f"{path / 'config.toml'} was changed after the run began: {shown or 'its digest differs'}; "
        "restore it to continue this run, or start a new run with --force (or another --out)",
    )


def _show(v: Any) -> str:
    return "unset" if v is None else json.dumps(v)


def run_files(path: Path, marker: dict[str, Any]) -> set[str]:
    """Names of the files a run with this marker writes into its directory."""
    groups = marker.get("groups")
    own = set(OWN_FILES)
    if isinstance(groups, list):
        own |= {f"{g}.spk" for g in groups if isinstance(g, str) and _NAME.match(g) and g not in (".", "..")}
    return own


def _is_own(name: str, own: set[str]) -> bool:
    if name in own:
        return True
    m = _TMP.match(name)
    return bool(m) and m.group(1) in own


def _inside_cwd(path: Path) -> bool:
    try:
        Path.cwd().resolve().relative_to(path.resolve())
    except (ValueError, OSError):
        return False
    return True


def check_out(path: Path, force: bool = False) -> None:
    """Checks before a run touches ``path``: not a file; with ``force``, not the working directory
    or one of its parents."""
    if path.exists() and not path.is_dir():
        raise ConfigError("out", f"{path} exists and is not a directory")
    if force and path.exists() and _inside_cwd(path):
        raise ConfigError("out", f"{path} is the working directory or one of its parents; --force will not empty it")


def prepare_directory(path: str | Path, force: bool = False, resume: bool = False) -> Path:
    """Make ``path`` ready for a fresh run (the caller holds its :class:`RunLock`). An existing
    directory with anything but the lock is refused unless ``force``; then it must be a run's
    (:data:`MARKER`) holding only files a run writes, and just those are removed."""
    path = Path(path)
    try:
        check_out(path, force)
        entries = [] if not path.exists() else sorted(p.name for p in path.iterdir())
        for e in entries:  # a run killed while writing its marker left only this
            m = _TMP.match(e)
            if m and m.group(1) == MARKER and (path / e).is_file():
                (path / e).unlink()
        entries = [e for e in entries if e not in _LOCK_FILES and (path / e).exists()]
        if entries and not resume:
            if not force:
                raise ConfigError("out", f"{path} exists; pass --resume to continue it or --force to overwrite it")
            marker = read_marker(path)
            if marker is None:
                raise ConfigError(
                    "out", f"{path} is not a superspike run directory (no {MARKER}); refusing to empty it"
                )
            own = run_files(path, marker)
            foreign = [e for e in entries if not _is_own(e, own) or not (path / e).is_file() or (path / e).is_symlink()]
            if foreign:
                more = f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
                raise ConfigError(
                    "out",
                    f"{path} holds files a run does not write ({', '.join(foreign[:3])}{more}); refusing to empty it",
                )
            for e in entries:  # the marker last: a --force stopped half-way can be repeated
                if e != MARKER:
                    (path / e).unlink()
            (path / MARKER).unlink(missing_ok=True)
        path.mkdir(parents=True, exist_ok=True)  # (the marker, written next, fails early if it cannot be)
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(path) else ""
        raise ConfigError("out", f"cannot use {path} as the run directory{where}: {exc.strerror or exc}") from None
    return path


class RunLock:
    """The run directory's lock, held for the whole run by ``train`` (fresh, ``--force``,
    ``--resume``); a second process gets a one-line error naming the holder."""

    def __init__(self, path: str | Path) -> None:
        from filelock import FileLock

        self.path = Path(path)
        self._lock = FileLock(str(self.path / LOCK), timeout=0)
        self.held = False

    def acquire(self) -> RunLock:
        from filelock import Timeout

        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._lock.acquire()
        except Timeout:
            raise ConfigError(
                "out",
                f"{self.path} is in use by another superspike process ({holder(self.path)}); "
                "wait for it to end or stop it",
            ) from None
        except OSError as exc:
            raise ConfigError("out", f"cannot use {self.path} as the run directory: {exc.strerror or exc}") from None
        self.held = True
        with contextlib.suppress(OSError):  # only informs a second process; a full disk must not stop us here
            text = f"pid {os.getpid()} on host {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n"
            with open(self.path / HOLDER, "w", encoding="utf-8") as fh:
                fh.write(text)
        return self

    def release(self) -> None:
        if self.held:
            with contextlib.suppress(OSError):
                (self.path / HOLDER).unlink()
            self._lock.release()
            self.held = False

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def holder(path: Path) -> str:
    """Who holds the lock of run directory ``path``, as its side file says."""
    try:
        text = (path / HOLDER).read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        text = ""
    return text.splitlines()[0][:200] if text else "holder unknown"


def remove_stale_temporaries(path: Path, marker: dict[str, Any] | None) -> None:
    """Remove temporary files of atomic writes a killed run left (the caller holds the lock)."""
    own = run_files(path, marker or {})
    with contextlib.suppress(OSError):
        for p in path.iterdir():
            m = _TMP.match(p.name)
            if m and m.group(1) in own and p.is_file():
                p.unlink()


class RunDirectory:
    """Writes a run's outputs while it runs (spikes are streamed, memory stays flat: each group's
    spikes are written at every :meth:`flush` (every checkpoint) or when :data:`BUFFER_RECORDS`
    of them are waiting, whichever comes first).

    An operating-system error while writing (a full disk) is raised as an OSError naming the
    file. ``append``: continue the files of a checkpoint (resume); else start them anew."""

    def __init__(self, path: Path, names: list[str], dt: float, append: bool = False) -> None:
        self.path = path
        self.names = names
        self.curve_path = path / CURVE
        if not append:
            self.curve_path.unlink(missing_ok=True)
        self.writers: dict[str, SpkWriter] = {}
        self._waiting: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {n: [] for n in names}
        self._nwaiting = dict.fromkeys(names, 0)
        for n in names:
            with _named(path / f"{n}.spk"):
                self.writers[n] = SpkWriter(path / f"{n}.spk", dt, append=append)

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
        for name in self.writers:
            s, i = spikes[name]
            if s.size:
                self._waiting[name].append((np.array(s), np.array(i)))  # copies: engines may reuse theirs
                self._nwaiting[name] += s.size
                if self._nwaiting[name] >= BUFFER_RECORDS:
                    self._write_waiting(name)

    def _write_waiting(self, name: str) -> None:
        parts, self._waiting[name], self._nwaiting[name] = self._waiting[name], [], 0
        if parts:
            writer = self.writers[name]
            with _named(writer.path):
                writer.write(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))

    def curve_row(self, row: dict[str, float | int]) -> None:
        """Append one cost line to learning_curve.tsv (the header first, if the file has none).
        A failed write is cut off again, so the file keeps whole lines."""
        size = self.curve_path.stat().st_size if self.curve_path.exists() else 0
        text = "\t".join(row) + "\n" if size == 0 else ""
        text += "\t".join(_fmt(v) for v in row.values()) + "\n"
        with _named(self.curve_path):
            if size == 0:  # the header with the first line, whole or not at all
                write_atomic(self.curve_path, text)
                return
            try:
                with open(self.curve_path, "a", encoding="utf-8") as fh:
                    fh.write(text)
            except OSError:
                with contextlib.suppress(OSError):
                    os.truncate(self.curve_path, size)
                raise

    def truncate(self, curve_rows: int, spk_records: dict[str, int]) -> None:
        """Cut the files back to a checkpoint: ``curve_rows`` cost lines (the header stays), so
        many spikes per group (a run killed after its checkpoint may have written more). Files
        holding less than the checkpoint counts are an error (the directory was damaged)."""
        for name, n in spk_records.items():
            writer = self.writers[name]
            have = writer.tell_records()
            if not 0 <= n <= have:
                raise InputFileError(
                    writer.path,
                    f"holds {have} spike records, but the checkpoint counts {n}; the run directory is damaged "
                    "(start the run anew with --force)",
                )
        text = self.curve_path.read_text(encoding="utf-8") if self.curve_path.exists() else ""
        lines = text.splitlines(keepends=True)
        lines = [line for line in lines if line.endswith("\n")]  # a torn last line goes
        if curve_rows < 0 or (curve_rows > 0 and len(lines) < 1 + curve_rows):
            raise InputFileError(
                self.curve_path,
                f"holds {max(len(lines) - 1, 0)} cost lines, but the checkpoint counts {curve_rows}; the run "
                "directory is damaged (start the run anew with --force)",
            )
        for name, n in spk_records.items():
            with _named(self.writers[name].path):
                self.writers[name].truncate_records(n)
        keep = lines[: 1 + curve_rows]
        if "".join(keep) != text:
            with _named(self.curve_path), atomic_write(self.curve_path, "w") as fh:
                fh.write("".join(keep))

    def rollback(self, curve_rows: int, spk_records: dict[str, int]) -> None:
        """After a failed write (a full disk): close the files and cut them back to the last
        checkpoint without writing anything, so every file stays readable. Best effort."""
        self.close(quiet=True)
        for name, n in spk_records.items():
            with contextlib.suppress(OSError):
                p = self.writers[name].path
                if p.stat().st_size > (n + 1) * RECORD_BYTES:
                    os.truncate(p, (n + 1) * RECORD_BYTES)
        with contextlib.suppress(OSError):
            raw = self.curve_path.read_bytes()
            cut = 0
            for _ in range(1 + curve_rows):
                nl = raw.find(b"\n", cut)
                if nl < 0:
                    break
                cut = nl + 1
            if cut < len(raw):
                os.truncate(self.curve_path, cut)

    def save_weights(self, net: Network) -> None:
        """weights.npz: ``w/<connection>`` [pre, post] and ``b/<feedback edge>`` [src, dst] (float32)."""
        save_weights(self.path / "weights.npz", net.weights, net.feedback)

    def flush(self, sync: bool = True) -> None:
        """Push streamed spikes and cost lines to the operating system and, with ``sync``, to
        disk (before a checkpoint counts them)."""
        for name, w in self.writers.items():
            self._write_waiting(name)
            with _named(w.path):
                w.flush(sync=False)
        if sync:
            self.sync()

    def sync(self) -> None:
        """Make what :meth:`flush` pushed durable (fsync the spike files and the learning curve).
        Safe in another thread while the run appends, but not after :meth:`close`."""
        for w in self.writers.values():
            with _named(w.path):
                w.sync()
        if self.curve_path.exists():
            with _named(self.curve_path), open(self.curve_path, "rb") as fh:
                os.fsync(fh.fileno())

    def close(self, quiet: bool = False) -> None:
        """Write the spikes waiting and close the spike files (``quiet``: after a failure, ignore
        errors and drop the spikes waiting: the files are cut back to the last checkpoint)."""
        for name, w in self.writers.items():
            if quiet:
                self._waiting[name], self._nwaiting[name] = [], 0
                with contextlib.suppress(OSError):
                    w.close()
            else:
                self._write_waiting(name)
                with _named(w.path):
                    w.close()


@contextlib.contextmanager
def _named(path: Path):  # type: ignore[no-untyped-def]
    """An OSError without a file name (a failed write or fsync) gets ``path`` as its name."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None:
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from None
        raise


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
    lines = [line.split("\t") for line in _whole_lines(path.read_text()).splitlines() if line.strip()]
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
    data = np.genfromtxt(io.StringIO(_whole_lines(path.read_text())), delimiter="\t", names=True, dtype=float, ndmin=1)
    return {name: np.atleast_1d(data[name]) for name in data.dtype.names}


def _whole_lines(text: str) -> str:
    """The text up to its last line break: a line torn by a kill mid-write is not read."""
    return text[: text.rfind("\n") + 1]
