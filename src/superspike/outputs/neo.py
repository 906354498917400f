"""Spikes of a run as Neo objects, for analysis with Elephant. Needs the ``neo`` extra.

One :class:`neo.Block` per run, one :class:`neo.Segment` per time window (by default one per
phase of the training schedule, docs/MODEL.md section 2.10: the burn-in, each training block,
and the test after training), and in each segment one :class:`neo.SpikeTrain` per neuron of
every group of the network, named as the network names them (``input``, ``hidden0``, ...,
``output`` for a chain; any names for a graph), and of ``target``: the target pattern replayed
on the loop grid, the target ids of all output groups in their declaration order. Spike times
are in s: a spike in time step s is at ``s * dt``; windows are aligned to the step grid
(``floor(t/dt)``). Each train is named ``"<group> <neuron>"`` and annotated with its ``group``,
the group's ``kind`` (``input``, ``hidden``, ``output`` or ``target``) and its ``neuron`` id
within the group; a target train also with the ``output_group`` and ``output_neuron`` it is the
target of. The block has one :class:`neo.Group` per group of neurons (annotated with ``kind``),
holding that group's trains of every segment::

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
    group_annotations: dict[str, dict[str, Any]] | None = None,
    neuron_annotations: dict[str, dict[str, Sequence[Any]]] | None = None,
) -> Any:
    """A neo Block from spikes in time steps.

    ``groups`` maps a group name to (steps int64, ids int64, number of neurons); ``windows`` are
    (first step, stop step, segment name, segment annotations), stop exclusive; ``dt`` in s.
    ``group_annotations[g]`` annotate every train of group g and its neo.Group;
    ``neuron_annotations[g][key][k]`` annotates the trains of neuron k of group g.
    """
    neo, pq = import_neo()
    group_annotations = group_annotations or {}
    neuron_annotations = neuron_annotations or {}
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
            extra = group_annotations.get(g, {})
            per_neuron = neuron_annotations.get(g, {})
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
                    **extra,
                    **{key: values[k] for key, values in per_neuron.items()},
                )
                seg.spiketrains.append(st)
                by_group[g].append(st)
        block.segments.append(seg)
    for g, trains in by_group.items():
        block.groups.append(neo.Group(trains, name=g, allowed_types=[neo.SpikeTrain], **group_annotations.get(g, {})))
    block.check_relationships()
    return block


def schedule_windows(cfg: Any, window: float | None = None, end: int | None = None) -> list[_Window]:
    """The phases of a run's schedule (docs/MODEL.md, section 2.10) as windows in steps: burn-in, block 1..B, test.

    With ``window`` (s), each phase is cut to its first ``window`` seconds (the recorded
    windows of the reference). ``end`` (step) drops what lies after it (an unfinished run).
    """
    from superspike.run.schedule import Schedule

    dt = cfg.get("neuron").dt
    sched = Schedule.create(
        cfg.get("burn_in"), cfg.get("block_duration"), cfg.get("blocks"), cfg.grid, dt, cfg.get("eta"),
        test_periods=cfg.get("test_periods"),
    )  # fmt: skip
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
    ``groups``: which groups of the run's network (and ``target``) to include (default: all).
    The groups come from the ``[network]`` table of the run's config.toml (a chain's from
    ``nin``, ``hidden`` and ``nout`` in a config.toml written before networks were graphs); each
    group's spikes from its ``<group>.spk`` file.
    """
    from superspike.errors import ConfigError
    from superspike.io import read_ras, read_spk
    from superspike.run.config import load_config, network_spec
    from superspike.task import Raster
    from superspike.task.replay import Replay

    import_neo()
    run_dir = Path(run_dir)
    config = run_dir / "config.toml"
    if not config.exists():
        raise InputFileError(run_dir, "not a run directory (no config.toml)")
    cfg = load_config(config)
    try:
        spec = network_spec(cfg)
    except ConfigError as exc:
        raise InputFileError(config, f"{exc}; not the config.toml of a run") from None
    if cfg.grid is None:
        raise InputFileError(config, "lacks grid; not the config.toml of a run")
    dt = spec.neuron.dt
    sizes = {g.name: g.n for g in spec.groups}
    names = [*sizes, "target"]
    wanted = list(groups) if groups is not None else names
    for g in wanted:
        if g not in names:
            raise UserError(f"{run_dir}: no group {g!r}; the run has {', '.join(names)}")
    data: dict[str, tuple[np.ndarray, np.ndarray, int]] = {}
    last = 0
    for g in sizes:
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
        replay = Replay.from_raster(Raster(t, i, spec.nout, str(run_dir / "target.ras")), cfg.grid, dt)
        parts = [replay.events(a, b) for a, b, _, _ in wins]
        ts = np.concatenate([p[0] for p in parts]) if parts else np.empty(0, np.int64)
        ti = np.concatenate([p[1] for p in parts]) if parts else np.empty(0, np.int64)
        data["target"] = (ts, ti, spec.nout)
    task = cfg.task or str(cfg.target)
    ann = {"run_dir": str(run_dir.resolve()), "dt": dt, "task": task, "grid": cfg.grid}
    group_ann, neuron_ann = _annotations(spec)
    return spikes_to_neo({g: data[g] for g in wanted}, wins, dt, run_dir.name, ann, group_ann, neuron_ann)


def _annotations(spec: Any) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, list[Any]]]]:
    """Each group's kind; for the target trains, the output group and neuron each is the target of
    (the task's target ids are split over the output groups in declaration order)."""
    kinds = {g.name: "input" if g.kind == "input" else "output" if g.target else "hidden" for g in spec.groups}
    group_ann: dict[str, dict[str, Any]] = {name: {"kind": kind} for name, kind in kinds.items()}
    group_ann["target"] = {"kind": "target"}
    out_group = [g.name for g in spec.output_groups for _ in range(g.n)]
    out_neuron = [k for g in spec.output_groups for k in range(g.n)]
    return group_ann, {"target": {"output_group": out_group, "output_neuron": out_neuron}}


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
    """The spikes of a :class:`~superspike.run.simulation.SpikeRecorder` as a neo Block: one
    neo.Group per group of ``network`` (a Network or its NetworkSpec) and ``target``.

    ``windows`` (s) default to the recorder's own windows, else one Segment from 0 to ``t_stop``
    (s; default: just after the last spike).
    """
    import_neo()
    spec = getattr(network, "spec", network)
    dt = spec.neuron.dt
    sizes = {**{g.name: g.n for g in spec.groups}, "target": spec.nout}
    recorded = getattr(recorder, "names", list(sizes))
    data = {g: (*recorder.spikes(g), n) for g, n in sizes.items() if g in recorded}
    if windows is not None:
        wins = [(_step(a, dt), _step(b, dt), f"window {k}", {"phase": "window"}) for k, (a, b) in enumerate(windows)]
    elif recorder.windows is not None:
        wins = [(a, b, f"window {k}", {"phase": "window"}) for k, (a, b) in enumerate(recorder.windows)]
    else:
        stop = max((int(s.max()) + 1 for s, _, _ in data.values() if s.size), default=1)
        if t_stop is not None:
            stop = _step(t_stop, dt)
        wins = [(0, stop, "recording", {"phase": "recording"})]
    group_ann, neuron_ann = _annotations(spec)
    return spikes_to_neo(data, wins, dt, group_annotations=group_ann, neuron_annotations=neuron_ann)
