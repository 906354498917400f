"""``train``: a run from a configuration to its outputs (the schedule of MODEL.md 2.10)."""

from __future__ import annotations

import contextlib
import errno
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from superspike.errors import ConfigError, InputFileError, OutputFileError, RunInterrupted, SimulationError
from superspike.io import load_weights
from superspike.network import Network, NetworkSpec
from superspike.optim import make_optimizer
from superspike.outputs.rundir import (
    MARKER,
    RunDirectory,
    RunLock,
    check_config,
    check_out,
    prepare_directory,
    read_curve_rows,
    read_marker,
    remove_stale_temporaries,
    write_marker,
)
from superspike.rule.cost import van_rossum_per_neuron
from superspike.run.budget import check_run
from superspike.run.checkpoint import CHECKPOINT, CheckpointWriter, check_progress, load_checkpoint
from superspike.run.config import RunConfig, config_from_dict, load_config, network_spec, resolve, save_config
from superspike.run.schedule import Schedule
from superspike.run.simulation import Simulation, SpikeRecorder
from superspike.task import Task
from superspike.task.windows import score_windows

__all__ = ["RunResult", "build_network", "build_task", "load_run_network", "train"]


def build_task(cfg: RunConfig) -> tuple[Task, RunConfig, list[str]]:
    """The task of a configuration, the configuration with every setting decided, and notes
    (:func:`superspike.run.config.resolve`, as a tuple)."""
    r = resolve(cfg)
    return r.task, r.config, list(r.notes)


def build_network(cfg: RunConfig, spec: NetworkSpec | None = None) -> tuple[Network, list[str]]:
    """The network of a resolved configuration: weights from ``init_from`` (NIR), ``init_weights``
    (npz) or drawn from the seed; and notes. ``spec``: the configuration's network, if at hand."""
    spec = spec if spec is not None else network_spec(cfg)
    drawn = Network.initialize(spec, cfg.get("seed"), cfg.get("w0"))
    if cfg.init_from is not None:  # a NIR graph (superspike.outputs.nir; needs the nir extra)
        from superspike.outputs.nir import network_from_nir

        return network_from_nir(cfg.init_from, spec, drawn)
    if cfg.init_weights is None:
        return drawn, []
    chain = spec.is_chain()
    weights, feedback = load_weights(
        cfg.init_weights, spec.shapes, spec.feedback_shapes, chain=chain, w_max=spec.rule.w_max
    )
    names = list(spec.shapes)
    notes = [
        f"{cfg.init_weights}: no feedback matrix for edge {e} (b/{e}"
        + (f" or b{names.index(e)}" if chain and e in names else "")
        + f"); drawn from seed {cfg.get('seed')}"
        for e in spec.feedback_shapes
        if e not in feedback
    ]
    return Network(spec, weights, {**drawn.feedback, **feedback}), notes


def load_run_network(run_dir: str | Path) -> Network:
    """The final network of a finished run directory: the graph of its config.toml with the
    weights and feedback matrices of its weights.npz."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputFileError(run_dir, "no such run directory")
    if not (run_dir / "config.toml").is_file():
        raise InputFileError(run_dir, "not a run directory (no config.toml)")
    weights = run_dir / "weights.npz"
    if not weights.is_file():
        raise InputFileError(run_dir, "has no weights.npz (did the run finish?)")
    cfg = load_config(run_dir / "config.toml")
    network, _ = build_network(replace(cfg, init_weights=str(weights), init_from=None))
    return network


@dataclass
class RunResult:
    """What a run produced: final network, learning curve rows, run directory, recorded spikes."""

    config: RunConfig
    network: Network
    curve: list[dict[str, float]] = field(default_factory=list)
    out: Path | None = None
    spikes: SpikeRecorder | None = None
    notes: list[str] = field(default_factory=list)


class _Tracker:
    """Spike counts of the LIF groups since the last cost line, and the output spikes of the last
    loop period (ids in the task's target space: output groups one after another, MODEL.md 4.2)."""

    def __init__(self, spec: NetworkSpec, period: int) -> None:
        self.lif = [g.name for g in spec.lif_groups]
        self.counts = np.zeros(len(self.lif), np.int64)
        self.offsets: dict[str, int] = {}
        off = 0
        for g in spec.output_groups:
            self.offsets[g.name] = off
            off += g.n
        self.period = period
        self.recent: list[tuple[np.ndarray, np.ndarray]] = []

    def __call__(self, start: int, stop: int, spikes: dict, target: tuple) -> None:
        for k, name in enumerate(self.lif):
            self.counts[k] += spikes[name][0].size
        parts = [(spikes[name][0], spikes[name][1] + off) for name, off in self.offsets.items()]
        if len(parts) > 1:  # several output groups: one time-ordered stream
            s = np.concatenate([p[0] for p in parts])
            i = np.concatenate([p[1] for p in parts])
            order = np.argsort(s, kind="stable")
            parts = [(s[order], i[order])]
        lo = stop - self.period
        kept = [(s[s >= lo], i[s >= lo]) for s, i in [*self.recent, *parts]]
        self.recent = [(s, i) for s, i in kept if s.size]

    def last_period(self, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """Output spikes (steps, target-space ids) of the loop period that ends at ``stop``."""
        if not self.recent:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        s = np.concatenate([r[0] for r in self.recent])
        i = np.concatenate([r[1] for r in self.recent])
        keep = s >= stop - self.period
        return s[keep], i[keep]


class _StopFlag:
    """SIGINT/SIGTERM handlers that only raise a flag; the run loop checkpoints and stops."""

    def __init__(self, active: bool) -> None:
        self.signum: int | None = None
        self._old: dict[int, object] = {}
        if active and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: object) -> None:
        self.signum = signum

    def restore(self) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]


def train(
    cfg: RunConfig | None = None,
    out: str | Path | None = None,
    *,
    force: bool = False,
    resume: bool = False,
    engine: str | None = None,
    quiet: bool = False,
    record: bool = False,
    allow_large: bool = False,
) -> RunResult:
    """Run the schedule of MODEL.md 2.10 for ``cfg``; write the run directory ``out`` if given.

    With ``out``, a checkpoint (whole state and progress) is written atomically at the start and
    at the end of every block, SIGINT/SIGTERM write one and raise :class:`RunInterrupted`, and
    ``resume=True`` continues ``out`` from its checkpoint (``cfg`` is then read from
    ``out/config.toml``; ``engine`` may override its engine). The continued run is identical to
    an uninterrupted one. ``record`` keeps every spike in memory too (``RunResult.spikes``).
    A run too large for the machine is refused first (:func:`superspike.run.budget.check_run`)
    unless ``allow_large``.
    """
    locks: list[RunLock] = []  # the run directory's lock, held until the run ends
    try:
        return _train(cfg, out, force, resume, engine, quiet, record, locks, allow_large)
    finally:
        for lock in locks:
            lock.release()


def _open_for_resume(path: Path, lock_holder: list[RunLock]) -> RunConfig:
    """Lock run directory ``path`` and read its configuration, checked against the digest the run
    began with (config.toml is rewritten from the marker if a kill came before it)."""
    if not path.is_dir():
        raise ConfigError("resume", f"{path} is not a run directory (no config.toml)")
    marker = read_marker(path)
    if marker is None and not (path / "config.toml").is_file():
        raise ConfigError(
            "resume",
            f"{path} is not a run directory (no config.toml, no {MARKER}); if a run into it was stopped "
            "before it began, run the same command again",
        )
    lock_holder.append(RunLock(path).acquire())
    remove_stale_temporaries(path, marker)
    if not (path / "config.toml").is_file():  # killed between the marker and config.toml
        try:
            cfg = config_from_dict(marker["config"], str(path / MARKER))  # type: ignore[index]
        except (KeyError, TypeError):
            raise InputFileError(path / MARKER, "holds no configuration; start the run anew with --force") from None
        save_config(cfg, path / "config.toml")
    cfg = load_config(path / "config.toml")
    check_config(path, cfg, marker)
    return cfg


def _train(
    cfg: RunConfig | None,
    out: str | Path | None,
    force: bool,
    resume: bool,
    engine: str | None,
    quiet: bool,
    record: bool,
    lock_holder: list[RunLock],
    allow_large: bool = False,
    *,
    simulation: Callable[..., Simulation] = Simulation,
    stop_flag: _StopFlag | None = None,
    checkpoint_wall: float = 0.0,
) -> RunResult:
    """The run of :func:`train`. An ensemble (:mod:`superspike.run.ensemble`) passes its own
    ``simulation`` (a member of a combined network, same interface), the ``stop_flag`` it
    raises on a signal, and ``checkpoint_wall``: block checkpoints only once this many wall
    seconds have passed since the last (0: every block; the first and the final one always)."""
    if resume:
        if out is None:
            raise ConfigError("resume", "needs the run directory to continue")
        cfg = _open_for_resume(Path(out), lock_holder)
    if cfg is None:
        cfg = RunConfig()
    if engine is not None:
        cfg = replace(cfg, engine=engine)
    resolved = resolve(cfg)
    task, config, spec = resolved.task, resolved.config, resolved.spec
    notes = list(resolved.notes)
    sched = Schedule.create(
        config.burn_in,
        config.block_duration,
        config.blocks,
        task.grid,
        spec.neuron.dt,
        config.eta,
        config.lr_drop_block,
        config.lr_drop_factor,
        config.get("test_periods"),
        test_line=task.is_stream,
    )
    if not resume:  # before anything large is allocated (a resumed run was admitted when it began)
        check_run(spec, sched, len(task.input.times), out, allow_large=allow_large, record=record)
    network, more = build_network(config, spec)
    notes += more
    if not quiet and not resume:
        for note in notes:
            print(f"note: {note}", file=sys.stderr)

    names = [g.name for g in spec.groups]
    state = progress = None
    path = None
    if out is not None:
        path = Path(out)
        if not resume:
            check_out(path, force)
            lock_holder.append(RunLock(path).acquire())
            prepare_directory(path, force=force)
            try:
                write_marker(path, names, config)  # first: the directory is a run's from now on
            except OSError as exc:
                raise _write_error(exc, path, None, resumable=False) from None
        elif (path / CHECKPOINT).exists():
            state, progress = load_checkpoint(path / CHECKPOINT, network)
            check_progress(path / CHECKPOINT, progress, network, state.clock, sched.end)
        # else: killed before its first checkpoint; the run starts again from the beginning
    optimizer = make_optimizer(
        config.optimizer,
        spec.rule,
        config.epsilon,
        rms_tau=config.rms_tau,
        rms_bias_correction=bool(config.rms_bias_correction),
    )
    sim = simulation(network, task, engine=config.engine, optimizer=optimizer, epsilon=config.epsilon, state=state)
    dt = spec.neuron.dt
    U = spec.update_steps
    feed = sim.feed
    result = RunResult(config, network, out=path, notes=notes)
    # the final test of a stream is scored as a whole: keep its output spikes
    tracker = _Tracker(spec, sched.period * (sched.test_periods if sched.test_line else 1))
    sizes = {g.name: g.n for g in spec.groups}
    rundir = None
    wall_before = 0.0
    last = 0
    # what the last checkpoint on disk counts (files are cut back to it on failure)
    ckpt = CheckpointWriter()
    if path is not None:
        try:
            rundir = RunDirectory(path, names, dt, append=progress is not None)
            if progress is None:
                rundir.write_setup(config, task)
        except OSError as exc:
            if rundir is not None:
                rundir.close(quiet=True)
            raise _write_error(exc, path, None) from None
        if progress is not None:
            if int(progress["finished"]):
                rundir.close()
                result.curve = read_curve_rows(path)
                result.network = sim.current_network()
                if not quiet:
                    print(f"{path}: the run is already complete", file=sys.stderr)
                return result
            rows = int(progress["curve_rows"])
            counts = {n: int(progress[f"spk_{n}"]) for n in names}
            try:
                rundir.truncate(rows, counts)
            except (OSError, InputFileError) as exc:
                rundir.close(quiet=True)
                if isinstance(exc, OSError):
                    raise _write_error(exc, path, sim.clock * dt) from None
                raise
            result.curve = read_curve_rows(path)[:rows]
            ckpt.done = {"rows": rows, "counts": counts, "clock": sim.clock}
            tracker.counts[:] = progress["tracker_counts"]
            if progress["recent_steps"].size:
                tracker.recent = [(progress["recent_steps"], progress["recent_ids"])]
            last = int(progress["last_line"])
            wall_before = float(progress["wall"])
        sim.monitors.append(rundir)
    if record:
        result.spikes = sim.record()
    sim.monitors.append(tracker)
    flag = stop_flag if stop_flag is not None else _StopFlag(active=rundir is not None)
    bar = tqdm(
        total=round(sched.end * dt, 4),
        initial=round(sim.clock * dt, 4),
        unit="s",
        desc="simulated",
        smoothing=0,
        disable=quiet or not sys.stderr.isatty(),
        bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} s [{elapsed}<{remaining}, {rate_fmt}{postfix}]",
    )
    t_wall = time.perf_counter()
    last_checkpoint_wall = t_wall

    def elapsed() -> float:
        return wall_before + time.perf_counter() - t_wall

    def checkpoint(block_end: bool = False, wait: bool = False, finished: bool = False) -> None:
        """Write a checkpoint in the background (``wait``: until it is on disk)."""
        nonlocal last_checkpoint_wall
        if rundir is None:
            return
        if block_end and time.perf_counter() - last_checkpoint_wall < checkpoint_wall:
            return
        last_checkpoint_wall = time.perf_counter()
        rundir.flush(sync=False)  # the writer's thread syncs the files before the checkpoint counts them
        s, i = tracker.last_period(sim.clock)
        prog: dict[str, np.ndarray] = {
            "curve_rows": np.array(len(result.curve)),
            "tracker_counts": tracker.counts.copy(),
            "recent_steps": s,
            "recent_ids": i,
            "last_line": np.array(last),
            "wall": np.array(elapsed()),
            "finished": np.array(int(finished)),
        }
        for name, writer in rundir.writers.items():
            prog[f"spk_{name}"] = np.array(writer.tell_records())
        info = {"rows": len(result.curve), "counts": {n: int(prog[f"spk_{n}"]) for n in rundir.writers}}
        ckpt.save(rundir.path / CHECKPOINT, sim.state, prog, sync=rundir.sync, info={**info, "clock": sim.clock})
        if wait or finished:
            ckpt.wait()

    def kept() -> str:
        """Where a failed run can be resumed from (the last checkpoint on disk)."""
        ckpt.wait()
        return f"; the last good checkpoint (t = {ckpt.done['clock'] * dt:.1f} s) is kept" if ckpt.done else ""

    def advance(stop: int, learning: bool, eta: float, block: int) -> None:
        # engine calls end only at absolute update boundaries (k * U + 1) and schedule
        # boundaries, so a resumed run makes the same calls as an uninterrupted one
        while sim.clock < stop:
            boundary = ((sim.clock - 1) // U + 1) * U + 1
            n = min(boundary, stop) - sim.clock
            try:
                sim.run_steps(n, learning, eta)
            except SimulationError as exc:
                raise SimulationError(f"{exc} in block {block}{kept()}") from None
            bar.update(round(n * dt, 4))
            if flag.signum is not None:
                checkpoint(wait=True)
                name = signal.Signals(flag.signum).name
                raise RunInterrupted(
                    f"{name}: stopped at t = {sim.time:.2f} s (block {block}) with a checkpoint; "
                    f"resume with: superspike train --resume {rundir.path if rundir else ''}",
                    flag.signum,
                )

    def cost_line(block: int, eta: float) -> None:
        nonlocal last
        stop = sim.clock
        span = max(stop - last, 1) * dt
        row: dict[str, float] = {"block": block, "time_s": round(sim.time, 6), "cost": sim.cost(), "eta": eta}
        # the last loop period before the line (a stream: the trials of its last segment(s)); the
        # accuracy of a stream's final test line: all of the test's fresh trials
        lo = max(stop - sched.period, 0)
        s, i = tracker.last_period(stop)
        keep = s >= lo
        ts, ti = feed.target_events(lo, stop)
        row["vr_distance"] = float(van_rossum_per_neuron(s[keep] * dt, i[keep], ts * dt, ti, task.nout).mean())
        if task.windows is not None:  # trials scored (XOR, Fig. 5)
            if block <= sched.blocks:
                s, i = s[keep], i[keep]
            else:
                lo = sched.test_start
            row["accuracy"] = score_windows(*feed.windows(lo, stop), task.nout, s, i)
        for k, name in enumerate(tracker.lif):  # mean firing rate of each LIF group since the last line
            row[f"rate_{name}_hz"] = float(tracker.counts[k] / (span * sizes[name]))
        row["wall_s"] = round(elapsed(), 3)
        tracker.counts[:] = 0
        last = stop
        result.curve.append(row)
        if rundir is not None:
            rundir.curve_row(row)
        bar.set_postfix(block=block, cost=f"{row['cost']:.4g}")

    ended = False
    try:
        if progress is None:
            checkpoint()
        for _start, stop, learning, eta, block, line in sched.segments(config.eta):
            advance(stop, learning, eta, block)
            if line is not None and len(result.curve) <= line:
                cost_line(line, sched.block_eta(line) if learning or line == 0 else 0.0)
                checkpoint(block_end=True)
        result.network = sim.current_network()
        if rundir is not None:
            rundir.save_weights(result.network)
            checkpoint(finished=True)
        ended = True
    except OSError as exc:  # a full disk: one line naming the file; the files are cut back to the checkpoint
        if rundir is None or path is None:
            raise
        with contextlib.suppress(OSError):  # a checkpoint still being written (its error, if any: the same disk)
            ckpt.wait()
        done = ckpt.done
        if done:
            rundir.rollback(done["rows"], done["counts"])
        raise _write_error(exc, path, done["clock"] * dt if done else None) from None
    finally:
        bar.close()
        flag.restore()
        if not ended:  # another error: the checkpoint being written completes before the files close
            with contextlib.suppress(Exception):
                ckpt.wait()
        if rundir is not None:
            rundir.close(quiet=not ended)
    return result


def _write_error(exc: OSError, path: Path, kept: float | None, resumable: bool = True) -> OutputFileError:
    """A failed write in run directory ``path`` (a full disk) as one line: the file, the reason,
    what is kept and how to go on."""
    full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
    fix = "free space" if full else "fix that"
    if not resumable:
        tail = f"{fix}, then run the same command again"
    else:
        where = f"the last checkpoint (t = {kept:.1f} s) is kept" if kept is not None else "no checkpoint yet"
        tail = f"{where}; {fix}, then continue with: superspike train --resume {path}"
    return OutputFileError(exc.filename or path, f"cannot be written ({exc.strerror or exc}); {tail}")
