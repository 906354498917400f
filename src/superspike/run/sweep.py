"""Sweeps: many ordinary runs over a grid of settings and seeds, in parallel processes or on Dask.

A sweep file (TOML) has a ``[base]`` table (the keys of ``train``'s configuration file), a
``[grid]`` table whose keys map to lists of values (the sweep is their Cartesian product, in
file order), and ``seeds`` (a count n, meaning seeds 1..n, or a list). Each point is one run with
its own run directory ``DIR/runs/<name>``, where ``<name>`` spells out the point's grid values
and seed (``feedback=random_hidden=4_seed=3``).

A run that ends writes ``sweep_status.json`` into its directory atomically (status ``ok`` or
``failed`` with the error). The driver alone writes ``DIR/results.csv`` (one row per finished run,
rewritten atomically after each). Rerunning the same sweep skips runs marked ``ok``, retries failed
ones from scratch, continues a run stopped by a signal from its checkpoint, and redoes a run
directory left half-written without one. ``DIR/sweep.toml`` records the sweep as last run.

Local sweeps use a process pool (``workers``); ``scheduler`` sends the runs to a Dask cluster
(the ``dask`` extra), whose workers must see ``DIR`` at the same path (a shared file system).

Local sweeps group compatible points into ensembles (:mod:`superspike.run.ensemble`: same
schedule, task and shapes; seeds, learning rates and random/uniform feedback may differ), each
advanced as one network in one worker, with results identical to separate runs; the progress
says so ("grouped 300 points into 3 ensembles of 100"); ``ensembles=False`` runs every point alone.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import io
import itertools
import json
import math
import multiprocessing
import os
import re
import shutil
import signal
import socket
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from superspike.errors import ConfigError, RunInterrupted, UserError
from superspike.io.files import atomic_write, check_regular, write_atomic
from superspike.network import NetworkSpec
from superspike.run.config import MAX_TOML_BYTES, config_from_dict, config_to_dict

ENSEMBLE = "ensemble"  #: marks a local pool task that runs several points as one ensemble
RUNS = "runs"  #: folder of the run directories inside a sweep directory
RESULTS = "results.csv"
SPEC_COPY = "sweep.toml"
STATUS = "sweep_status.json"  #: written atomically into a run directory when the run ends
STOP = ".stop"  #: in DIR/runs while a stopped sweep winds down: runs not yet begun return at once
LAST_LINES = 5  #: the final cost is the mean of the last so many cost lines
PATH_KEYS = ("input", "target", "init_weights", "init_from")  #: resolved against the sweep file's folder
RESULT_COLUMNS = (
    "status",
    "final_cost",
    "final_vr_distance",
    "final_accuracy",
    "rate_hidden_hz",
    "rate_output_hz",
    "wall_s",
    "host",
    "error",
)
DASK_HINT = "pip install superspike[dask]"


# ---------------------------------------------------------------------------------------------
# the sweep file


@dataclass(frozen=True)
class Point:
    """One run of a sweep: its grid values, seed, directory name and full configuration data."""

    name: str
    params: dict[str, Any]  #: grid key -> value (TOML form; nested keys dotted: ``neuron.tau_mem``)
    seed: int
    config: dict[str, Any]  #: ``[base]`` + params + seed, as :func:`config_from_dict` takes it


@dataclass(frozen=True)
class Sweep:
    """A parsed, validated sweep file."""

    source: Path
    base: dict[str, Any]
    grid: dict[str, list[Any]]  #: flattened (dotted) keys, in file order
    seeds: tuple[int, ...]
    description: str = ""
    points: tuple[Point, ...] = field(default=(), repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The sweep as TOML-ready data (paths resolved), written as ``DIR/sweep.toml``."""
        out: dict[str, Any] = {}
        if self.description:
            out["description"] = self.description
        out["seeds"] = list(self.seeds)
        out["base"] = self.base
        out["grid"] = {k: list(v) for k, v in self.grid.items()}
        return out


def load_sweep(path: str | Path) -> Sweep:
    """Read and check a sweep file: every point's configuration is validated before anything runs,
    and errors name the file, the table and the key."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        check_regular(path, "a sweep file")
        if path.stat().st_size > MAX_TOML_BYTES:
            raise ConfigError("sweep", f"larger than {MAX_TOML_BYTES >> 20} MB; not a sweep file?", str(path))
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError("sweep", f"no such file: {path}") from None
    except IsADirectoryError:
        raise ConfigError("sweep", f"{path} is a directory, not a sweep file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("sweep", f"not valid TOML ({exc})", str(path)) from None
    except UnicodeDecodeError as exc:
        raise ConfigError("sweep", f"not UTF-8 text (byte {exc.start}); a sweep file is TOML", str(path)) from None
    except OSError as exc:
        raise ConfigError("sweep", f"cannot be read ({exc.strerror or exc})", str(path)) from None
    return sweep_from_dict(data, path)


def sweep_from_dict(data: dict[str, Any], source: str | Path = "sweep") -> Sweep:
    """Build a :class:`Sweep` from TOML-like data; relative paths are taken from ``source``'s folder."""
    source = Path(source)
    src = str(source)
    unknown = set(data) - {"base", "grid", "seeds", "description"}
    if unknown:
        raise ConfigError(
            sorted(unknown)[0], "unknown key; a sweep file has [base], [grid], seeds and description", src
        )
    base = data.get("base", {})
    if not isinstance(base, dict):
        raise ConfigError("base", "must be a table ([base])", src)
    grid_in = data.get("grid", {})
    if not isinstance(grid_in, dict):
        raise ConfigError("grid", "must be a table ([grid])", src)
    description = data.get("description", "")
    if not isinstance(description, str):
        raise ConfigError("description", "must be a string", src)
    if "seed" in base or "seed" in grid_in:
        raise ConfigError(
            "[base]" if "seed" in base else "[grid]",
            "seed: set seeds with the top-level key `seeds` (a count or a list)",
            src,
        )
    folder = source.resolve().parent if source.name else Path.cwd()
    base = _resolve_paths(base, folder)
    grid: dict[str, list[Any]] = {}
    for key, values in _flatten(grid_in).items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"[grid] {key}", f"must be a non-empty list of values, got {values!r}", src)
        if key == "hidden":  # a single layer size may be written as a plain integer
            values = [[v] if isinstance(v, int) and not isinstance(v, bool) else v for v in values]
        if key in PATH_KEYS:
            values = [_resolve_paths({key: v}, folder)[key] for v in values]
        if len({_canon(v) for v in values}) != len(values):
            raise ConfigError(f"[grid] {key}", f"lists a value twice: {values!r}", src)
        grid[key] = values
    seeds = _seeds(data.get("seeds", [base.get("seed", 1)]), src)
    runs = len(seeds) * math.prod(len(v) for v in grid.values())
    if runs > MAX_SWEEP_RUNS:  # before the points are made and checked one by one
        raise ConfigError(
            "[grid]", f"makes {runs} runs (grid x seeds), more than {MAX_SWEEP_RUNS}; split the sweep", src
        )

    # validate: [base] alone, then every grid value on top of it, then every combination
    _check(base, f"{src} [base]")
    for key, values in grid.items():
        for i, value in enumerate(values):
            _check(_merge(base, {key: value}), f"{src} [grid] {key}[{i}] = {value!r}")
    points = []
    keys = list(grid)
    for combo in itertools.product(*(grid[k] for k in keys)):
        params = dict(zip(keys, combo, strict=True))
        for seed in seeds:
            name = point_name(params, seed)
            config = _merge(base, {**params, "seed": seed})
            _check(config, f"{src}: point {name}")
            points.append(Point(name, params, seed, config))
    names: dict[str, Point] = {}
    for p in points:
        if p.name in names:
            raise ConfigError(
                "[grid]",
                f"two points get the same directory name {p.name!r} "
                f"({names[p.name].params} and {p.params}); make the values more distinct",
                src,
            )
        names[p.name] = p
    return Sweep(source, base, grid, seeds, description, tuple(points))


def point_name(params: dict[str, Any], seed: int) -> str:
    """A readable, stable directory name: ``key=value`` pairs joined by ``_``, then the seed."""
    parts = [f"{key}={_fmt_name(key, value)}" for key, value in params.items()]
    parts.append(f"seed={seed}")
    return "_".join(parts)


def _fmt_name(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "-".join(_fmt_name(key, v) for v in value) or "none"
    if isinstance(value, str) and key.split(".")[-1] in PATH_KEYS:
        value = Path(value).stem
    return re.sub(r"[^A-Za-z0-9.+-]", "-", str(value))


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


MAX_SWEEP_RUNS = 100_000  #: most runs one sweep file may make (each is a directory and a results row)


def _seeds(value: Any, src: str) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise ConfigError("seeds", f"a count must be at least 1, got {value}", src)
        if value > MAX_SWEEP_RUNS:
            raise ConfigError(
                "seeds", f"a count must be at most {MAX_SWEEP_RUNS} (runs in one sweep), got {value}", src
            )
        return tuple(range(1, value + 1))
    if isinstance(value, list) and value and all(isinstance(s, int) and not isinstance(s, bool) for s in value):
        if len(set(value)) != len(value):
            raise ConfigError("seeds", f"lists a seed twice: {value}", src)
        return tuple(value)
    raise ConfigError("seeds", f"must be a count (integer >= 1) or a non-empty list of integers, got {value!r}", src)


def _flatten(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"neuron": {"tau_mem": [...]}}`` -> ``{"neuron.tau_mem": [...]}``."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _merge(base: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """``base`` with dotted keys of ``values`` set in its nested tables (copies, base untouched)."""
    out = copy.deepcopy(base)
    for key, value in values.items():
        *tables, last = key.split(".")
        node = out
        for t in tables:
            node = node.setdefault(t, {})
            if not isinstance(node, dict):
                raise ConfigError(key, f"{t} is not a table")
        node[last] = value
    return out


def _resolve_paths(table: dict[str, Any], folder: Path) -> dict[str, Any]:
    out = dict(table)
    for key in PATH_KEYS:
        value = out.get(key)
        if isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
            out[key] = str((folder / value).resolve())
        elif isinstance(value, str):
            out[key] = str(Path(value).expanduser())
    return out


def _check(config: dict[str, Any], source: str) -> None:
    try:
        cfg = config_from_dict(config, source)
        if cfg.input is None:
            from superspike.task import get_task  # the registry only; no simulation code

            get_task(cfg.task or "default")
        for key in PATH_KEYS:
            value = getattr(cfg, key)
            if value is not None and not Path(value).is_file():
                raise ConfigError(key, f"no such file: {value}", source)
    except ConfigError as exc:
        raise ConfigError(exc.key, exc.problem, source) from None


# ---------------------------------------------------------------------------------------------
# one point (runs in a worker process or on a Dask worker)


def _lock(path: Path) -> Any:
    """An exclusive advisory lock on ``path`` (held while the returned file is open), so a run left
    running by a killed sweep and the same run of a new sweep never write one directory at once."""
    fh = open(path, "a+")
    os.utime(path)  # the driver reads the time a point started from this file
    try:
        import fcntl

        fcntl.flock(fh, fcntl.LOCK_EX)
    except (ImportError, OSError):  # no flock (Windows, some network file systems): best effort
        pass
    return fh


def read_status(run_dir: str | Path) -> dict[str, Any] | None:
    """The ``sweep_status.json`` of a run directory, or None if absent or unreadable."""
    try:
        return json.loads((Path(run_dir) / STATUS).read_text())
    except (OSError, ValueError):
        return None


def _write_status(run_dir: Path, status: dict[str, Any]) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(run_dir / STATUS, json.dumps(status, indent=1))


def _summarize(curve: list[dict[str, float]], spec: NetworkSpec) -> dict[str, float | None]:
    """Final cost, van Rossum distance and rates: means over the last :data:`LAST_LINES` cost lines;
    the rates of the hidden groups and of the output groups, each weighted by group size. Tasks
    with windows of opportunity: ``final_accuracy``, the accuracy of the last cost line (a
    stream's final test on fresh trials, MODEL.md 3.6); else None."""
    last = curve[-LAST_LINES:]
    if not last:
        return {
            "final_cost": None,
            "final_vr_distance": None,
            "final_accuracy": None,
            "rate_hidden_hz": None,
            "rate_output_hz": None,
        }

    def mean(key: str) -> float:
        return float(sum(r[key] for r in last) / len(last))

    def rate(groups: tuple) -> float | None:
        sizes = [(f"rate_{g.name}_hz", g.n) for g in groups if f"rate_{g.name}_hz" in last[0]]
        total = sum(n for _, n in sizes)
        return sum(mean(key) * n for key, n in sizes) / total if total else None

    out: dict[str, float | None] = {"final_cost": mean("cost"), "final_vr_distance": mean("vr_distance")}
    acc = last[-1].get("accuracy")
    out["final_accuracy"] = float(acc) if isinstance(acc, (int, float)) and acc == acc else None
    out["rate_hidden_hz"] = rate(spec.hidden_groups)
    out["rate_output_hz"] = rate(spec.output_groups)
    return out


def run_point(
    config: dict[str, Any], run_dir: str, name: str, source: str = "sweep", train: Callable[..., Any] | None = None
) -> dict[str, Any]:
    """Run one point into ``run_dir`` and write its status file; returns the status.

    Skips a run already marked ok for the same configuration, continues one stopped with a
    checkpoint, and redoes anything else from scratch. A failure is recorded, not raised; a
    signal (SIGTERM, SIGINT) leaves a checkpoint and returns status ``interrupted``. ``train``:
    what runs it (:func:`superspike.run.train.train`; an ensemble member's in an ensemble).
    """
    from superspike.run.config import load_config, resolve

    if train is None:
        from superspike.run.train import train

    path = Path(run_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = _lock(path.parent / f".{name}.lock")
    t0 = time.perf_counter()
    status: dict[str, Any] = {"name": name, "seed": config.get("seed"), "config": config, "host": socket.gethostname()}
    try:
        if (path.parent / STOP).exists():
            return {**status, "status": "cancelled", "error": "the sweep was stopped"}
        old = read_status(path)
        if old and old.get("status") == "ok" and old.get("config") == config:
            return old  # finished meanwhile by another sweep process
        cfg = config_from_dict(config, f"{source}: point {name}")
        result = None
        resumable = (path / "checkpoint.npz").is_file() and (path / "config.toml").is_file() and not old
        if resumable:
            with contextlib.suppress(UserError):
                if config_to_dict(load_config(path / "config.toml")) == config_to_dict(resolve(cfg).config):
                    result = train(None, path, resume=True, quiet=True)
        if result is None:
            from superspike.outputs.rundir import MARKER

            if path.exists() and not (path / MARKER).exists():
                shutil.rmtree(path)  # ours (DIR/runs/NAME), written before runs marked their directory
            # a failed or half-written run: --force removes only what a run writes (under the run's lock)
            result = train(cfg, path, force=path.exists(), quiet=True)
        status.update(status="ok", **_summarize(result.curve, result.network.spec), error="")
    except RunInterrupted as exc:
        return {**status, "status": "interrupted", "error": str(exc)}
    except Exception as exc:  # recorded, not raised: one bad run must not stop the sweep
        message = " ".join(str(exc).split()) or type(exc).__name__
        if not isinstance(exc, UserError):
            message = f"{type(exc).__name__}: {message}"
        status.update(status="failed", error=message)
    finally:
        lock.close()
    status["wall_s"] = round(time.perf_counter() - t0, 3)
    status["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    try:
        _write_status(path, status)
    except OSError as exc:  # a full disk: the driver still records the run in results.csv
        status["error"] = " ".join(
            p for p in (status.get("error", ""), f"(its {STATUS} could not be written: {exc.strerror or exc})") if p
        )
    return status


# ---------------------------------------------------------------------------------------------
# the driver


@dataclass
class SweepProgress:
    """Where a sweep stands: what a progress callback is given after every finished run."""

    total: int
    ok: int = 0  #: runs that are done (including those done before this invocation)
    failed: int = 0  #: runs that failed in this invocation
    skipped: int = 0  #: runs already done before this invocation (not run again)
    retried: int = 0  #: runs that had failed before and are run again
    last: dict[str, Any] | None = None  #: status of the run that just ended
    #: members of each ensemble the runs to do were grouped into (empty: every run alone)
    ensembles: list[int] = field(default_factory=list)
    alone: int = 0  #: runs to do that run alone, when some were grouped

    def grouping(self) -> str:
        """What was grouped, in words ("" if nothing)."""
        sizes = self.ensembles
        if not sizes:
            return ""
        lo, hi = min(sizes), max(sizes)
        each = f"{lo}" if lo == hi else f"{lo}-{hi}"
        tail = f"; {self.alone} alone" if self.alone else ""
        s = "s" if len(sizes) > 1 else ""
        return f"grouped {sum(sizes)} points into {len(sizes)} ensemble{s} of {each} (advanced together){tail}"

    @property
    def remaining(self) -> int:
        return self.total - self.ok - self.failed


@dataclass
class SweepResult:
    """The outcome of :func:`run_sweep`."""

    out: Path
    results: Path
    progress: SweepProgress
    statuses: dict[str, dict[str, Any]]  #: point name -> status (ok or failed runs only)


def run_sweep(
    sweep: Sweep | str | Path,
    out: str | Path,
    *,
    workers: int | None = None,
    scheduler: Any = None,
    progress: Callable[[SweepProgress], None] | None = None,
    ensembles: bool | int = True,
) -> SweepResult:
    """Run every point of ``sweep`` not yet finished into ``out``; return the progress and statuses.

    ``workers``: local worker processes (default: the CPUs available). ``scheduler``: a Dask
    scheduler address (``tcp://host:8786``), a scheduler file (``.json``) or a
    ``distributed.Client``; the runs then go to that cluster. Failed runs are recorded in
    ``results.csv`` and do not stop the sweep; SIGINT/SIGTERM stop it (running runs write a
    checkpoint) and raise :class:`RunInterrupted`. ``ensembles``: group compatible points into
    ensembles (local sweeps; True: at most :data:`~superspike.run.ensemble.DEFAULT_MAX_MEMBERS`
    members each, a number: at most that many; False: every point alone).
    """
    if not isinstance(sweep, Sweep):
        sweep = load_sweep(sweep)
    out = Path(out)
    if workers is not None and workers < 1:
        raise ConfigError("workers", f"must be at least 1, got {workers}")
    client = _connect(scheduler) if scheduler is not None else None  # fail early, before touching out
    try:
        return _run_sweep(sweep, out, workers, client, progress, ensembles)
    finally:
        if client is not None and not _is_client(scheduler):
            client.close()


def _run_sweep(
    sweep: Sweep,
    out: Path,
    workers: int | None,
    client: Any,
    progress: Callable[[SweepProgress], None] | None,
    ensembles: bool | int = True,
) -> SweepResult:
    _prepare_out(out)
    runs = out / RUNS
    runs.mkdir(exist_ok=True)
    with _sweep_lock(out):
        (runs / STOP).unlink(missing_ok=True)
        statuses: dict[str, dict[str, Any]] = {}
        for p in sweep.points:
            old = read_status(runs / p.name)
            if old is None:
                continue
            if old.get("config") != p.config:
                raise ConfigError(
                    "out",
                    f"{runs / p.name} was run with "
                    f"{_first_difference(old.get('config') or {}, p.config, sweep.source)}; use "
                    "another --out, or delete that run directory to redo it",
                )
            if old.get("status") in ("ok", "failed"):
                statuses[p.name] = old
        with atomic_write(out / SPEC_COPY) as fh:
            tomli_w.dump(sweep.to_dict(), fh)

        todo = [p for p in sweep.points if statuses.get(p.name, {}).get("status") != "ok"]
        done_before = len(sweep.points) - len(todo)
        retried = sum(s.get("status") == "failed" for s in statuses.values())
        prog = SweepProgress(len(sweep.points), ok=done_before, skipped=done_before, retried=retried)
        groups = [[p] for p in todo]
        if ensembles and client is None and len(todo) > 1:
            groups = _ensemble_groups(todo, sweep.source, ensembles, workers or _cpus())
            prog.ensembles = [len(g) for g in groups if len(g) > 1]
            prog.alone = sum(len(g) == 1 for g in groups) if prog.ensembles else 0
        results = out / RESULTS
        kept = _old_rows(results, sweep, statuses)
        write_results(sweep, statuses, results, kept)

        def finished(status: dict[str, Any]) -> None:
            name = status["name"]
            if status["status"] not in ("ok", "failed"):
                return
            statuses[name] = status
            prog.ok += status["status"] == "ok"
            prog.failed += status["status"] == "failed"
            prog.last = status
            write_results(sweep, statuses, results, kept)
            if progress is not None:
                progress(prog)

        if progress is not None:
            progress(prog)
        if todo:

            def point_args(p: Point) -> tuple:
                return (p.config, str(runs / p.name), p.name, str(sweep.source))

            if client is not None:
                _run_dask(client, [point_args(p) for p in todo], finished)
            else:
                tasks = [point_args(g[0]) if len(g) == 1 else (ENSEMBLE, [point_args(p) for p in g]) for g in groups]
                _run_local(tasks, workers or _cpus(), finished, runs)
        write_results(sweep, statuses, results, kept)
    return SweepResult(out, results, prog, statuses)


def _ensemble_groups(points: list[Point], source: Path, ensembles: bool | int, workers: int) -> list[list[Point]]:
    """The points in groups that run as ensembles (groups of one run alone)."""
    from superspike.run.ensemble import DEFAULT_MAX_MEMBERS, group_points

    limit = DEFAULT_MAX_MEMBERS if ensembles is True else max(1, int(ensembles))
    try:
        cfgs = [config_from_dict(p.config, f"{source}: point {p.name}") for p in points]
        return [[points[i] for i in g] for g in group_points(cfgs, limit, workers)]
    except UserError:  # a point that cannot even be resolved fails alone, with its message
        return [[p] for p in points]


def run_ensemble_points(args: list[tuple]) -> list[dict[str, Any]]:
    """:func:`run_point` for each point of ``args`` (its arguments), the points advanced together
    as one ensemble (:func:`superspike.run.ensemble.run_members`); returns their statuses."""
    from superspike.run.ensemble import run_members

    jobs = [lambda tr, a=a: run_point(*a, train=tr) for a in args]
    out = run_members(jobs)
    for k, r in enumerate(out):
        if isinstance(r, BaseException):  # run_point records failures; this is a crash of the driver
            out[k] = _crash_status(args[k], f"{type(r).__name__}: {' '.join(str(r).split())}")
    return out


def _first_difference(old: dict[str, Any], new: dict[str, Any], source: Path) -> str:
    fa, fb = _flatten(old), _flatten(new)
    for key in sorted(set(fa) | set(fb)):
        if fa.get(key) != fb.get(key):
            return f"{key} = {fa.get(key, '(unset)')!r}, but {source} now gives {fb.get(key, '(unset)')!r}"
    return f"another configuration than {source} now gives"


def _prepare_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError("out", f"{out} exists and is not a directory")
    if out.exists() and any(out.iterdir()) and not (out / SPEC_COPY).exists():
        raise ConfigError(
            "out", f"{out} exists and is not a sweep directory (no {SPEC_COPY}); refusing to write into it"
        )
    out.mkdir(parents=True, exist_ok=True)


@contextlib.contextmanager
def _sweep_lock(out: Path) -> Iterator[None]:
    fh = open(out / ".sweep.lock", "a+")
    try:
        try:
            import fcntl

            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:
            pass
        except BlockingIOError:
            fh.seek(0)
            who = fh.read(200).strip().splitlines()[:1] or ["holder unknown"]
            raise UserError(f"{out}: another sweep is running in this directory ({who[0]})") from None
        except OSError:
            pass
        with contextlib.suppress(OSError):  # who holds it, for a second sweep's message (as run directories do)
            fh.seek(0)
            fh.truncate()
            fh.write(f"pid {os.getpid()} on host {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
            fh.flush()
        yield
    finally:
        fh.close()


def _old_rows(path: Path, sweep: Sweep, statuses: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """Rows of an existing results.csv for points of ``sweep`` without a status file (one that
    could not be written, a full disk): kept until the run finishes again, so no row is lost."""
    header = ["run", *sweep.grid, "seed", *RESULT_COLUMNS]
    names = {p.name for p in sweep.points} - set(statuses)
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error):
        return {}
    if not rows or rows[0] != header:
        return {}
    return {r[0]: r for r in rows[1:] if len(r) == len(header) and r[0] in names}


def write_results(
    sweep: Sweep, statuses: dict[str, dict[str, Any]], path: Path, kept: dict[str, list[str]] | None = None
) -> None:
    """``results.csv``: one row per finished (ok or failed) run, in sweep order, written atomically
    (``kept``: earlier rows of runs not finished since, by name)."""
    keys = list(sweep.grid)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["run", *keys, "seed", *RESULT_COLUMNS])
    for p in sweep.points:
        s = statuses.get(p.name)
        if s is None:
            if kept and p.name in kept:
                writer.writerow(kept[p.name])
            continue
        row = [p.name, *(_fmt_csv(p.params[k]) for k in keys), p.seed]
        row += [_fmt_csv(s.get(c)) for c in RESULT_COLUMNS]
        writer.writerow(row)
    write_atomic(path, buf.getvalue())


def _fmt_csv(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value)
    return str(value)


def parse_value(text: str) -> Any:
    """A results.csv cell back as a value: numbers, true/false, lists; anything else stays a string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def read_results(sweep_dir: str | Path) -> tuple[list[str], list[dict[str, Any]]]:
    """The grid keys of a sweep directory (from its sweep.toml) and the rows of its results.csv."""
    sweep_dir = Path(sweep_dir)
    try:
        with open(sweep_dir / SPEC_COPY, "rb") as fh:
            keys = list(tomllib.load(fh).get("grid", {}))
    except (OSError, tomllib.TOMLDecodeError):
        keys = []
    try:
        with open(sweep_dir / RESULTS, newline="") as fh:
            reader = csv.DictReader(fh)
            rows = [
                {k: parse_value(v) if k not in ("run", "error", "host") else v for k, v in r.items()} for r in reader
            ]
            if not keys and reader.fieldnames:
                keys = list(reader.fieldnames[1 : reader.fieldnames.index("seed")])
    except FileNotFoundError:
        raise UserError(f"{sweep_dir}: no {RESULTS} (not a sweep directory?)") from None
    return keys, rows


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


# --- local process pool ------------------------------------------------------------------------


_POOL_PARENT: int | None = None  #: in a local pool worker: the sweep's process id


def _worker_init(parent: int) -> None:
    """In each worker: end with the sweep (a killed sweep leaves no orphans running; SIGTERM makes
    a run write its checkpoint and stop)."""
    global _POOL_PARENT
    _POOL_PARENT = parent
    # Ctrl-C reaches the whole process group: the sweep handles it (and passes SIGTERM on), while
    # a run in progress takes SIGINT as its own stop signal (run.train installs that handler)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes

            ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the sweep died before the line above
        os._exit(1)


def _pool_task(*args: Any) -> dict[str, Any]:
    """:func:`run_point` in a pool worker; a worker whose sweep has died exits after its run (its
    siblings keep the task queue open, so it would otherwise wait for work forever)."""
    try:
        if args[0] == ENSEMBLE:
            return run_ensemble_points(args[1])  # type: ignore[return-value]
        return run_point(*args)
    finally:
        if _POOL_PARENT is not None and os.getppid() != _POOL_PARENT:
            os._exit(0)


@contextlib.contextmanager
def _thread_env(threads: int) -> Iterator[None]:
    """Spawned workers inherit the environment: keep BLAS/numba threads to a fair share of the CPUs
    (unless the user set them)."""
    keys = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
    saved = {k: os.environ.get(k) for k in keys}
    for k in keys:
        os.environ.setdefault(k, str(threads))
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class _Stop(Exception):
    def __init__(self, signum: int) -> None:
        self.signum = signum


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[None]:
    """SIGINT and SIGTERM raise :class:`_Stop` in the driver (main thread only)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise _Stop(signum)

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _run_local(args: list[tuple], workers: int, finished: Callable[[dict[str, Any]], None], runs: Path) -> None:
    """Run the points in a pool of ``workers`` spawned processes. A worker that dies (killed, out of
    memory) breaks the pool: the runs it took down are retried one at a time, and a run that kills
    its worker again is recorded as failed."""
    ctx = multiprocessing.get_context("spawn")
    threads = max(1, _cpus() // workers)
    queue = list(args)
    suspects: list[tuple] = []
    pool: ProcessPoolExecutor | None = None
    futures: dict[Future, tuple] = {}
    try:
        with _stop_on_signals():
            while queue or suspects:
                if queue:
                    batch, queue, n = queue, [], workers
                else:  # after a crash: the runs it took down, alone, so a second crash is theirs
                    batch, suspects, n = [suspects[0]], suspects[1:], 1
                started = time.time()
                with _thread_env(threads):
                    pool = ProcessPoolExecutor(
                        min(n, len(batch)), mp_context=ctx, initializer=_worker_init, initargs=(os.getpid(),)
                    )
                    futures = {pool.submit(_pool_task, *a): a for a in batch}
                pending = set(futures)
                while pending:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in done:
                        a = futures[fut]
                        try:
                            status = fut.result()
                        except KeyboardInterrupt:  # the worker was stopped outside a run
                            continue
                        except BrokenProcessPool:
                            if a[0] == ENSEMBLE:  # its points are retried one at a time
                                suspects += a[1]
                            elif not _started_since(runs, a[2], started):
                                queue.append(a)
                            elif n == 1:
                                finished(_crash_status(a, "its worker process died twice (killed, or out of memory?)"))
                            else:
                                suspects.append(a)
                            continue
                        except Exception as exc:  # e.g. a result that could not be sent back
                            why = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
                            status = (
                                [_crash_status(x, why) for x in a[1]] if a[0] == ENSEMBLE else _crash_status(a, why)
                            )
                        for st in status if isinstance(status, list) else [status]:
                            finished(st)
                pool.shutdown(wait=True)
                pool = None
    except _Stop as stop:
        if pool is not None:
            _stop_pool(pool, futures, finished, runs)
        raise RunInterrupted(
            f"{signal.Signals(stop.signum).name}: sweep stopped (running runs wrote a checkpoint); "
            "rerun the same command to finish it",
            stop.signum,
        ) from None
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
            pool = None  # the traceback keeps this frame: let the pool's queues be freed now


def _started_since(runs: Path, name: str, t: float) -> bool:
    try:
        return (runs / f".{name}.lock").stat().st_mtime >= t - 1.0
    except OSError:
        return False


def _crash_status(a: tuple, error: str) -> dict[str, Any]:
    config, run_dir, name, _ = a
    status = {
        "name": name,
        "seed": config.get("seed"),
        "config": config,
        "host": socket.gethostname(),
        "status": "failed",
        "error": error,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    with contextlib.suppress(OSError):
        _write_status(Path(run_dir), status)
    return status


def _stop_pool(pool: ProcessPoolExecutor, futures: dict[Future, tuple], finished: Callable, runs: Path) -> None:
    """Stop a local sweep: runs not yet started are cancelled (those already handed to a worker see
    the stop file and return at once), running ones get SIGTERM, write a checkpoint and return."""
    (runs / STOP).touch()
    for fut in futures:
        fut.cancel()
    running = [f for f in futures if not f.done()]
    procs = list(getattr(pool, "_processes", {}).values())
    for proc in procs:
        with contextlib.suppress(Exception):
            os.kill(proc.pid, signal.SIGTERM)
    late = running
    with contextlib.suppress(_Stop):
        done, late = wait(running, timeout=60)
        for fut in done:
            with contextlib.suppress(BaseException):
                result = fut.result()
                for st in result if isinstance(result, list) else [result]:
                    finished(st)
    if late:
        for proc in procs:
            with contextlib.suppress(Exception):
                proc.kill()


# --- Dask --------------------------------------------------------------------------------------


def _is_client(obj: Any) -> bool:
    return hasattr(obj, "submit") and hasattr(obj, "gather")


def _connect(scheduler: Any) -> Any:
    """A ``distributed.Client`` for an address, a scheduler file or an existing client."""
    if _is_client(scheduler):
        return scheduler
    try:
        from distributed import Client
    except ImportError:
        raise UserError(f"--scheduler needs Dask's distributed package: {DASK_HINT}") from None
    address = str(scheduler)
    try:
        if address.endswith(".json") and Path(address).is_file():
            return Client(scheduler_file=address, timeout="20s")
        return Client(address, timeout="20s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise UserError(f"cannot reach the Dask scheduler at {address}: {' '.join(str(exc).split())}") from None


def _run_dask(client: Any, args: list[tuple], finished: Callable[[dict[str, Any]], None]) -> None:
    """Submit every point to the cluster; record each as it ends (a worker lost for good: failed)."""
    from distributed import as_completed

    futures = {}
    with _stop_on_signals():
        try:
            for a in args:
                key = f"superspike-sweep-{a[2]}-{os.getpid()}-{time.time_ns()}"
                fut = client.submit(run_point, *a, key=key, pure=False)
                futures[fut] = a
            for fut in as_completed(list(futures)):
                a = futures[fut]
                try:
                    finished(fut.result())
                except Exception as exc:  # KilledWorker, lost connection, ...
                    message = " ".join(str(exc).split())
                    finished(_crash_status(a, f"{type(exc).__name__}: {message}"))
        except _Stop as stop:
            client.cancel(list(futures))
            raise RunInterrupted(
                f"{signal.Signals(stop.signum).name}: sweep stopped; runs already started on "
                "the cluster may go on; rerun the same command to finish the sweep",
                stop.signum,
            ) from None


# ---------------------------------------------------------------------------------------------
# progress on a terminal or in a log


class ProgressPrinter:
    """Progress for the sweep as a whole: a bar on a terminal, one line per finished run otherwise."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.bar = None
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()

    def __call__(self, p: SweepProgress) -> None:
        if p.last is None:
            again = f" ({p.retried} failed before)" if p.retried else ""
            self._line(f"sweep: {p.total} runs: {p.skipped} already done, {p.remaining} to run{again}")
            if p.ensembles:
                self._line(f"sweep: {p.grouping()}")
            if self.tty and p.remaining:
                from tqdm import tqdm

                self.bar = tqdm(total=p.total, initial=p.ok, unit="run", desc="sweep", file=self.stream)
                self.bar.set_postfix(failed=p.failed, remaining=p.remaining)
            return
        s = p.last
        what = f"final cost {s['final_cost']:.4g}" if s["status"] == "ok" else f"FAILED: {s['error']}"
        line = (
            f"[{p.ok + p.failed}/{p.total}] {s['name']}: {what} ({s.get('wall_s', 0):.0f} s); "
            f"{p.ok} ok, {p.failed} failed, {p.remaining} remaining"
        )
        if self.bar is not None:
            self.bar.n = p.ok + p.failed
            self.bar.set_postfix(failed=p.failed, remaining=p.remaining)
            if s["status"] != "ok":
                self.bar.write(line, file=self.stream)
            self.bar.refresh()
        else:
            self._line(line)

    def _line(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
