"""Spikes of a run as Neo objects, for analysis with Elephant. Needs the ``neo`` extra.

One :class:`neo.Block` per run, one :class:`neo.Segment` per time window (by default one per
phase of the SPEC 3 schedule: the burn-in, each training block, and the test after training),
and in each segment one :class:`neo.SpikeTrain` per neuron of every group (``input``,
``hidden0``, ..., ``output``, and ``target``: the target pattern replayed on the loop grid).
Spike times are in s: a spike in time step s is at ``s * dt``; windows are aligned to the step
grid (``floor(t/dt)``, SPEC 3). Each train is annotated with its ``group`` and ``neuron`` id; the
block has one :class:`neo.Group` per group of neurons, holding that group's trains of every
segment::

    from superspike.outputs.neo import run_to_neo
    from elephant.statistics import mean_firing_rate
    block = run_to_neo("runs/oxford", window=1.0)      # the first second of every block
    out = [st for st in block.segments[-1].spiketrains if st.annotations["group"] == "output"]
    rates = [mean_firing_rate(st) for st in out]
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from superspike.errors import InputFileError, UserError
from superspike.params import steps

EXTRA_MESSAGE = "needs the neo extra: pip install 'superspike[neo]'"

#: a window: (first step, stop step, name, annotations)
_Window = tuple[int, int, str, dict[str, Any]]


def import_neo() -> tuple[ModuleType, ModuleType]:
    """``neo`` and ``quantities``, or a one-line UserError naming the extra to install."""
    try:
        import neo
        import quantities
    except ImportError:
        raise UserError(f"Neo output {EXTRA_MESSAGE}") from None
    return neo, quantities


def spikes_to_neo(
    groups: dict[str, tuple[np.ndarray, np.ndarray, int]],
    windows: Sequence[tuple[int, int, str, dict[str, Any]]],
    dt: float,
    name: str = "superspike run",
    annotations: dict[str, Any] | None = None,
) -> Any:
    """A neo Block from spikes in time steps.

    ``groups`` maps a group name to (steps int64, ids int64, number of neurons); ``windows`` are
    (first step, stop step, segment name, segment annotations), stop exclusive; ``dt`` in s.
    """
    neo, pq = import_neo()
    block = neo.Block(name=name, **(annotations or {}))
    by_group: dict[str, list[Any]] = {g: [] for g in groups}
    sorted_groups = {}
    for g, (s, i, n) in groups.items():
        s, i = np.asarray(s, np.int64), np.asarray(i, np.int64)
        order = np.argsort(s, kind="stable")
        sorted_groups[g] = (s[order], i[order], int(n))
    for index, (a, b, seg_name, seg_ann) in enumerate(windows):
        t0, t1 = a * dt, b * dt
        seg = neo.Segment(name=seg_name, index=index, **seg_ann)
        for g, (s, i, n) in sorted_groups.items():
            lo, hi = np.searchsorted(s, a, "left"), np.searchsorted(s, b, "left")
            ws, wi = s[lo:hi], i[lo:hi]
            order = np.argsort(wi, kind="stable")
            ws, wi = ws[order], wi[order]
            bounds = np.searchsorted(wi, np.arange(n + 1))
            for k in range(n):
                st = neo.SpikeTrain(
                    ws[bounds[k] : bounds[k + 1]] * dt,
                    units=pq.s,
                    t_start=t0 * pq.s,
                    t_stop=t1 * pq.s,
                    name=f"{g} {k}",
                    group=g,
                    neuron=k,
                    dt=dt,
                )
                seg.spiketrains.append(st)
                by_group[g].append(st)
        block.segments.append(seg)
    for g, trains in by_group.items():
        block.groups.append(neo.Group(trains, name=g, allowed_types=[neo.SpikeTrain]))
    block.check_relationships()
    return block


def schedule_windows(cfg: Any, window: float | None = None, end: int | None = None) -> list[_Window]:
    """The phases of a run's schedule (SPEC 3) as windows in steps: burn-in, block 1..B, test.

    With ``window`` (s), each phase is cut to its first ``window`` seconds (the recorded
    windows of the reference). ``end`` (step) drops what lies after it (an unfinished run).
    """
    from superspike.run.schedule import Schedule

    dt = cfg.neuron.dt
    sched = Schedule.create(cfg.burn_in, cfg.block_duration, cfg.blocks, cfg.grid, dt, cfg.eta)
    phases: list[_Window] = []
    if sched.burn_in > 0:
        phases.append((0, sched.burn_in, "burn-in", {"block": 0, "phase": "burn-in", "learning": False}))
    for b in range(sched.blocks):
        a = sched.block_start(b)
        phases.append((a, a + sched.block, f"block {b + 1}", {"block": b + 1, "phase": "training", "learning": True}))
    if sched.end > sched.training_end:
        phases.append(
            (sched.training_end, sched.end, "test", {"block": sched.blocks + 1, "phase": "test", "learning": False})
        )
    out = []
    for a, b, name, ann in phases:
        if window is not None:
            b = min(b, a + steps(window, dt))
        if end is not None:
            b = min(b, end)
        if b > a:
            out.append((a, b, name, ann))
    return out


def run_to_neo(
    run_dir: str | Path,
    windows: Sequence[tuple[float, float]] | None = None,
    *,
    window: float | None = None,
    groups: Sequence[str] | None = None,
) -> Any:
    """The spikes of a run directory as a neo Block (see the module docstring).

    ``windows``: (start, stop) pairs in s, one Segment each (edges on the step grid); by default
    one Segment per phase of the schedule (burn-in, training blocks, test), each cut to its first
    ``window`` s if given.
    ``groups``: which of input, hidden0..., output, target to include (default: all).
    """
    from superspike.io import read_ras, read_spk
    from superspike.run.config import load_config
    from superspike.task import Raster
    from superspike.task.replay import Replay

    import_neo()
    run_dir = Path(run_dir)
    if not (run_dir / "config.toml").exists():
        raise InputFileError(run_dir, "not a run directory (no config.toml)")
    cfg = load_config(run_dir / "config.toml")
    if cfg.nin is None or cfg.nout is None or cfg.hidden is None or cfg.grid is None:
        raise InputFileError(run_dir / "config.toml", "lacks nin, nout, hidden or grid; not the config.toml of a run")
    dt = cfg.neuron.dt
    names = ["input", *(f"hidden{k}" for k in range(len(cfg.hidden))), "output"]
    sizes = dict(zip(names, (cfg.nin, *cfg.hidden, cfg.nout), strict=True))
    wanted = list(groups) if groups is not None else [*names, "target"]
    for g in wanted:
        if g not in sizes and g != "target":
            raise UserError(f"{run_dir}: no group {g!r}; the run has {', '.join([*names, 'target'])}")
    data: dict[str, tuple[np.ndarray, np.ndarray, int]] = {}
    last = 0
    for g in names:
        s, i = read_spk(run_dir / f"{g}.spk", dt=dt, n_neurons=sizes[g])
        last = max(last, int(s[-1]) + 1 if s.size else 0)
        if g in wanted:
            data[g] = (s, i, sizes[g])
    if windows is None:
        end = None if (run_dir / "weights.npz").exists() else _curve_end(run_dir, dt, last)
        wins = schedule_windows(cfg, window, end)
    else:
        wins = []
        for k, (a, b) in enumerate(windows):
            if not (0 <= a < b):
                raise UserError(f"window {k}: ({a}, {b}) s is not a time interval with 0 <= start < stop")
            wins.append((_step(a, dt), _step(b, dt), f"window {k}", {"phase": "window"}))
    if "target" in wanted:
        t, i, _ = read_ras(run_dir / "target.ras")
        replay = Replay.from_raster(Raster(t, i, cfg.nout, str(run_dir / "target.ras")), cfg.grid, dt)
        parts = [replay.events(a, b) for a, b, _, _ in wins]
        ts = np.concatenate([p[0] for p in parts]) if parts else np.empty(0, np.int64)
        ti = np.concatenate([p[1] for p in parts]) if parts else np.empty(0, np.int64)
        data["target"] = (ts, ti, cfg.nout)
    ann = {"run_dir": str(run_dir.resolve()), "dt": dt, "task": cfg.task or str(cfg.target), "grid": cfg.grid}
    return spikes_to_neo({g: data[g] for g in wanted}, wins, dt, name=run_dir.name, annotations=ann)


def _step(t: float, dt: float) -> int:
    """A window edge in steps: the nearest step when within 1e-6 step of one (0.15 s -> 1500,
    not floor's 1499), else floor(t/dt)."""
    x = float(t) / dt
    return round(x) if abs(x - round(x)) < 1e-6 else int(np.floor(x))


def _curve_end(run_dir: Path, dt: float, last: int) -> int:
    """Step up to which an unfinished run has simulated: its last cost line, else its last spike."""
    from superspike.outputs.rundir import CURVE, read_curve

    if (run_dir / CURVE).exists():
        try:
            t = read_curve(run_dir / CURVE)["time_s"]
            if t.size:
                return max(steps(float(t[-1]) + dt / 2, dt), last)
        except (ValueError, KeyError):
            pass
    return last


def recorder_to_neo(
    recorder: Any,
    network: Any,
    windows: Sequence[tuple[float, float]] | None = None,
    t_stop: float | None = None,
) -> Any:
    """The spikes of a :class:`~superspike.run.simulation.SpikeRecorder` as a neo Block.

    ``windows`` (s) default to the recorder's own windows, else one Segment from 0 to ``t_stop``
    (s; default: just after the last spike).
    """
    import_neo()
    dt = network.spec.neuron.dt
    sizes = dict(zip(recorder.names, (*network.spec.sizes, network.spec.nout), strict=True))
    data = {g: (*recorder.spikes(g), sizes[g]) for g in recorder.names}
    if windows is not None:
        wins = [(_step(a, dt), _step(b, dt), f"window {k}", {"phase": "window"}) for k, (a, b) in enumerate(windows)]
    elif recorder.windows is not None:
        wins = [(a, b, f"window {k}", {"phase": "window"}) for k, (a, b) in enumerate(recorder.windows)]
    else:
        stop = max((int(s.max()) + 1 for s, _, _ in data.values() if s.size), default=1)
        if t_stop is not None:
            stop = _step(t_stop, dt)
        wins = [(0, stop, "recording", {"phase": "recording"})]
    return spikes_to_neo(data, wins, dt)
