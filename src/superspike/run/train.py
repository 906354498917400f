"""``train``: a run from a configuration to its outputs (the schedule of SPEC 3)."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from superspike.errors import ConfigError, SimulationError
from superspike.io import load_weights
from superspike.network import Network, NetworkSpec
from superspike.outputs.rundir import RunDirectory, prepare_directory
from superspike.params import RegularizerParams
from superspike.rule.cost import van_rossum_per_neuron
from superspike.run.config import RunConfig
from superspike.run.schedule import Schedule
from superspike.run.simulation import Simulation, SpikeRecorder
from superspike.task import Task, get_task, load_raster
from superspike.task.raster import check_grid

DEFAULT_GRID = 1.89  #: s, the loop period of the reference Oxford demo (SPEC 3)


def build_task(cfg: RunConfig) -> tuple[Task, RunConfig, list[str]]:
    """The task of a configuration, the configuration with every default resolved, and notes."""
    dt = cfg.neuron.dt
    notes: list[str] = []
    if cfg.input is None:
        builtin = get_task(cfg.task or "default")
        task = builtin.make(cfg.seed, dt)
        for key, value in (("nin", task.nin), ("nout", task.nout), ("grid", task.grid)):
            given = getattr(cfg, key)
            if given is not None and given != value:
                raise ConfigError(key, f"task {builtin.name!r} has {key} = {value}, got {given}")
        hidden = cfg.hidden if cfg.hidden is not None else builtin.suggested.get("hidden", ())
        resolved = replace(cfg, task=builtin.name, nin=task.nin, nout=task.nout, grid=task.grid, hidden=hidden)
        return task, resolved, notes
    inp, h_in, _ = load_raster(cfg.input, cfg.nin, role="input")
    tgt, h_tg, dropped = load_raster(
        cfg.target, cfg.nout, id_offset=cfg.id_offset, drop_out_of_range=cfg.drop_out_of_range
    )
    if dropped:
        notes.append(
            f"{cfg.target}: dropped {dropped} target spikes with ids outside 0..{tgt.n - 1} (--drop-out-of-range)"
        )
    grid = cfg.grid or h_tg.grid or h_in.grid or DEFAULT_GRID
    check_grid(inp, grid, dt)
    check_grid(tgt, grid, dt)
    task = Task(inp, tgt, grid, name=Path(cfg.target).resolve().parent.name)
    resolved = replace(
        cfg,
        input=str(Path(cfg.input).resolve()),
        target=str(Path(cfg.target).resolve()),
        nin=inp.n,
        nout=tgt.n,
        grid=grid,
        hidden=cfg.hidden if cfg.hidden is not None else (),
    )
    return task, resolved, notes


def build_network(cfg: RunConfig) -> tuple[Network, list[str]]:
    """The network of a resolved configuration: weights from ``init_from`` (NIR), ``init_weights`` (npz) or
    drawn from the seed."""
    reg = RegularizerParams(cfg.reg_strength, cfg.reg_exponent, cfg.reg_tau) if cfg.regularizer else None
    assert cfg.nin is not None and cfg.nout is not None and cfg.hidden is not None
    spec = NetworkSpec(
        cfg.nin,
        cfg.hidden,
        cfg.nout,
        cfg.feedback,
        cfg.feedback_delay,
        reg,
        cfg.fixed_hidden,
        cfg.linear,
        cfg.neuron,
        cfg.rule,
    )
    drawn = Network.initialize(spec, cfg.seed, cfg.w0)
    if cfg.init_from is not None:  # a NIR graph (superspike.outputs.nir; needs the nir extra)
        from superspike.outputs.nir import network_from_nir

        return network_from_nir(cfg.init_from, spec, drawn)
    if cfg.init_weights is None:
        return drawn, []
    weights, feedback = load_weights(cfg.init_weights, spec.shapes, spec.feedback_shapes)
    notes = [
        f"{cfg.init_weights}: no b{c}; feedback matrix b{c} drawn from seed {cfg.seed}"
        for c in spec.feedback_shapes
        if c not in feedback
    ]
    return Network(spec, weights, {**drawn.feedback, **feedback}), notes


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
    """Spike counts since the last cost line, and the output spikes of the last loop period."""

    def __init__(self, n_groups: int, period: int) -> None:
        self.counts = np.zeros(n_groups, np.int64)
        self.period = period
        self.recent: list[tuple[np.ndarray, np.ndarray]] = []

    def __call__(self, start: int, stop: int, spikes: list, target: tuple) -> None:
        for g, (s, _) in enumerate(spikes):
            self.counts[g] += s.size
        lo = stop - self.period
        kept = [(s[s >= lo], i[s >= lo]) for s, i in [*self.recent, spikes[-1]]]
        self.recent = [(s, i) for s, i in kept if s.size]

    def last_period(self, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """Output spikes (steps, ids) of the loop period that ends at ``stop``."""
        if not self.recent:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        s = np.concatenate([r[0] for r in self.recent])
        i = np.concatenate([r[1] for r in self.recent])
        keep = s >= stop - self.period
        return s[keep], i[keep]


def train(
    cfg: RunConfig,
    out: str | Path | None = None,
    *,
    force: bool = False,
    quiet: bool = False,
    record: bool = False,
) -> RunResult:
    """Run the schedule of SPEC 3 for ``cfg``; write the run directory ``out`` if given.

    ``record`` keeps every spike in memory too (``RunResult.spikes``), for notebook use.
    """
    task, resolved, notes = build_task(cfg)
    network, more = build_network(resolved)
    notes += more
    for note in notes:
        if not quiet:
            print(f"note: {note}", file=sys.stderr)
    sim = Simulation(network, task, engine=resolved.engine, optimizer=resolved.optimizer, epsilon=resolved.epsilon)
    dt = network.spec.neuron.dt
    sched = Schedule.create(
        resolved.burn_in,
        resolved.block_duration,
        resolved.blocks,
        task.grid,
        dt,
        resolved.eta,
        resolved.lr_drop_block,
        resolved.lr_drop_factor,
    )
    result = RunResult(resolved, network, out=None, notes=notes)
    rundir = None
    if out is not None:
        path = prepare_directory(out, force=force)
        rundir = RunDirectory(path, sim.names, dt)
        rundir.write_setup(resolved, task)
        sim.monitors.append(rundir)
        result.out = path
    if record:
        result.spikes = sim.record()
    tracker = _Tracker(len(sim.names), sched.period)
    sim.monitors.append(tracker)
    bar = tqdm(
        total=round(sched.end * dt, 4),
        unit="s",
        desc="simulated",
        disable=quiet or not sys.stderr.isatty(),
        bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} s [{elapsed}<{remaining}, {rate_fmt}{postfix}]",
    )
    t_wall = time.perf_counter()
    last = 0

    def advance(n: int, learning: bool, eta: float, block: int) -> None:
        try:
            chunk = max(1, sched.period)
            done = 0
            while done < n:
                k = min(chunk, n - done)
                sim.run_steps(k, learning, eta)
                done += k
                bar.update(round(k * dt, 4))
        except SimulationError as exc:
            raise SimulationError(f"{exc} in block {block}") from None

    def cost_line(block: int, eta: float) -> None:
        nonlocal last
        stop = sim.clock
        span = max(stop - last, 1) * dt
        row: dict[str, float] = {"block": block, "time_s": round(sim.time, 6), "cost": sim.cost(), "eta": eta}
        s, i = tracker.last_period(stop)
        lo = max(stop - sched.period, 0)
        ts, ti = sim.engine.target.events(lo, stop)
        row["vr_distance"] = float(van_rossum_per_neuron(s * dt, i, ts * dt, ti, task.nout).mean())
        for g, name in enumerate(sim.names):
            row[f"rate_{name}_hz"] = float(tracker.counts[g] / (span * network.spec.sizes[g]))
        row["wall_s"] = round(time.perf_counter() - t_wall, 3)
        tracker.counts[:] = 0
        last = stop
        result.curve.append(row)
        if rundir is not None:
            rundir.curve_row(row)
            rundir.flush()
        bar.set_postfix(block=block, cost=f"{row['cost']:.4g}")

    try:
        advance(sched.burn_in, False, resolved.eta, 0)
        cost_line(0, sched.block_eta(0))
        for b in range(sched.blocks):
            eta = sched.block_eta(b)
            advance(sched.block, True, eta, b)
            cost_line(b + 1, sched.block_eta(b + 1))
        advance(sched.end - sim.clock, False, 0.0, sched.blocks)
    finally:
        bar.close()
        if rundir is not None:
            rundir.close()
    result.network = sim.current_network()
    if rundir is not None:
        rundir.save_weights(result.network)
    return result
