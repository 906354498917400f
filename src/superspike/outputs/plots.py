"""Figures of a run directory (the panels of the paper's Fig. 6 and 7), drawn with matplotlib (Agg).

:func:`plot_run` draws the learning curve, the rasters of every group (input groups, hidden
groups, output groups, each by name) in the first and the last loop period of the run, the
target beside each output group, and histograms of the hidden groups' firing rates.
:func:`load_run` reads what a figure needs; :func:`raster` draws one raster panel.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from superspike.errors import UserError
from superspike.io.ras import read_ras
from superspike.io.spk import read_spk_window
from superspike.network import NetworkSpec
from superspike.outputs.rundir import CURVE, read_curve
from superspike.params import steps as to_steps
from superspike.run.config import RunConfig, load_config, network_spec
from superspike.run.schedule import Schedule
from superspike.task.feed import Feed


@dataclass
class RunData:
    """What a run directory holds, for plotting. Steps are time steps of ``dt`` s."""

    path: Path
    config: RunConfig
    curve: dict[str, np.ndarray]
    spec: NetworkSpec  #: the run's network (groups by name, sizes, which are outputs)
    names: list[str]  #: groups in the order the figure shows them: input, hidden, output groups
    sizes: tuple[int, ...]  #: neurons per group, in that order
    dt: float
    period: int  #: loop period, steps
    end: int  #: last simulated step + 1 (the schedule's end, or the last cost line if unfinished)
    target: tuple[np.ndarray, np.ndarray]  #: one loop period of the target: (steps, ids of all output groups)
    windows: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  #: (start, stop steps, ids)
    #: a built-in task that draws fresh trials (MODEL.md 3.6), made again from the seed: its
    #: target and windows differ from period to period (``target`` and ``windows`` are segment 0's)
    feed: Feed | None = None

    def spikes(self, group: str, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """Spikes (steps, ids) of a group in steps [start, stop), read from its file's window
        only (a long run's spike files may be larger than memory)."""
        return read_spk_window(self.path / f"{group}.spk", start, stop)

    def output_spikes(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """Spikes of all output groups in steps [start, stop), ids in the target's numbering
        (output groups one after another, in declaration order)."""
        parts, lo = [], 0
        for g in self.spec.output_groups:
            s, i = self.spikes(g.name, start, stop)
            parts.append((s, i + lo))
            lo += g.n
        if len(parts) == 1:
            return parts[0]
        s = np.concatenate([p[0] for p in parts])
        i = np.concatenate([p[1] for p in parts])
        order = np.argsort(s, kind="stable")
        return s[order], i[order]

    def target_of(self, group: str, start: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """The target (steps from ``start``, ids) of one output group in the loop period that
        begins at step ``start``, ids local to the group (the task's target ids are split over the
        output groups in declaration order)."""
        lo = 0
        for g in self.spec.output_groups:
            if g.name == group:
                if self.feed is not None:
                    s, i = self.feed.target_events(start, start + self.period)
                    s = s - start
                else:
                    s, i = self.target
                keep = (i >= lo) & (i < lo + g.n)
                return s[keep], i[keep] - lo
            lo += g.n
        raise KeyError(group)

    def windows_of(self, group: str, start: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """The windows of opportunity (start, stop steps from ``start``, ids) of one output group
        in the loop period that begins at step ``start``, ids local to it."""
        if self.windows is None:
            return None
        lo = 0
        for g in self.spec.output_groups:
            if g.name == group:
                if self.feed is not None:
                    a, b, i = self.feed.windows(start, start + self.period)
                    a, b = a - start, b - start
                else:
                    a, b, i = self.windows
                keep = (i >= lo) & (i < lo + g.n)
                return a[keep], b[keep], i[keep] - lo
            lo += g.n
        raise KeyError(group)

    @property
    def first_window(self) -> int:
        """First step of the first loop period (0)."""
        return 0

    @property
    def last_window(self) -> int:
        """First step of the last complete loop period."""
        return max(self.end // self.period - 1, 0) * self.period


def load_run(run_dir: str | Path) -> RunData:
    """Read a run directory (config.toml, learning_curve.tsv, target.ras; spikes on demand)."""
    path = Path(run_dir)
    if not path.is_dir():
        raise UserError(f"{path}: no such run directory")
    for name in ("config.toml", CURVE, "target.ras"):
        if not (path / name).is_file():
            raise UserError(f"{path}: not a run directory (no {name})")
    cfg = load_config(path / "config.toml")
    if cfg.nin is None or cfg.nout is None or cfg.grid is None:
        raise UserError(f"{path / 'config.toml'}: not a resolved run configuration (nin, nout, grid)")
    spec = network_spec(cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy warns about a file with a header only: reported below
        try:
            curve = read_curve(path / CURVE)
        except (ValueError, IndexError) as exc:  # IndexError: an empty file
            raise UserError(f"{path / CURVE}: not a readable learning curve ({str(exc) or 'empty'})") from None
    if not curve or "time_s" not in curve or len(curve["time_s"]) == 0:
        raise UserError(f"{path / CURVE}: no cost lines yet (the run stopped before its first); nothing to plot")
    dt = spec.neuron.dt
    sched = Schedule.create(
        cfg.get("burn_in"), cfg.get("block_duration"), cfg.get("blocks"), cfg.grid, dt, 0.0,
        test_periods=cfg.get("test_periods"),
    )  # fmt: skip
    if (path / "weights.npz").is_file():
        end = sched.end
    else:  # unfinished: up to the last cost line
        end = to_steps(float(curve["time_s"][-1]), dt, tolerance=0.5)  # the nearest step: times are written rounded
    times, ids, _ = read_ras(path / "target.ras")
    tsteps = to_steps(times, dt)
    order = np.argsort(tsteps, kind="stable")
    shown = [*spec.input_groups, *spec.hidden_groups, *spec.output_groups]
    return RunData(
        path,
        cfg,
        curve,
        spec,
        [g.name for g in shown],
        tuple(g.n for g in shown),
        dt,
        to_steps(cfg.grid, dt),
        end,
        (tsteps[order], ids[order]),
        *_builtin(cfg),
    )


def _builtin(cfg: RunConfig) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray] | None, Feed | None]:
    """Windows of opportunity of a built-in task that has them and the feed of one that draws
    fresh trials (both regenerated from the seed)."""
    if cfg.task is None or cfg.input is not None:
        return None, None
    from superspike.task import get_task

    dt = cfg.get("neuron").dt
    try:
        task = get_task(cfg.task).make(cfg.get("seed"), dt)
    except UserError:
        return None, None
    feed = Feed(task, dt) if task.is_stream and to_steps(task.grid, dt) == to_steps(cfg.grid, dt) else None
    if task.windows is None:
        return None, feed
    return task.windows.steps(cfg.grid, dt), feed  # type: ignore[arg-type]


def raster(
    ax: object,
    steps: np.ndarray,
    ids: np.ndarray,
    n: int,
    start: int,
    length: int,
    dt: float,
    color: str = "k",
    title: str | None = None,
) -> None:
    """Draw spikes (steps, ids) of ``n`` neurons in [start, start + length) with time from 0 s."""
    keep = (steps >= start) & (steps < start + length)
    t = (steps[keep] - start) * dt
    if n <= 10:
        ax.scatter(t, ids[keep], s=120, marker="|", c=color, linewidths=1.2)  # type: ignore[attr-defined]
    else:
        size = float(np.clip(400.0 / n, 0.4, 2.5))  # marker area, pt^2: small dots for big groups
        ax.scatter(t, ids[keep], s=size, marker="s", c=color, linewidths=0)  # type: ignore[attr-defined]
    ax.set_xlim(0, length * dt)  # type: ignore[attr-defined]
    ax.set_ylim(-0.5, n - 0.5)  # type: ignore[attr-defined]
    if n <= 10:
        ax.set_yticks(range(n))  # type: ignore[attr-defined]
    if title:
        ax.set_title(title, fontsize=9)  # type: ignore[attr-defined]


def _shade_windows(ax: object, run: RunData, group: str, start: int, length: int) -> None:
    """Light bands where a neuron of output group ``group`` has its window of opportunity open."""
    windows = run.windows_of(group, start)
    if windows is None:
        return
    a, b, wid = windows
    loops = [0] if run.feed is not None else range(start // run.period, (start + length) // run.period + 1)
    for loop in loops:
        base = loop * run.period - start if run.feed is None else 0
        for k in range(len(a)):
            lo, hi = base + a[k], base + b[k]
            if hi > 0 and lo < length:
                ax.fill_between(  # type: ignore[attr-defined]
                    [lo * run.dt, hi * run.dt], wid[k] - 0.4, wid[k] + 0.4, color="tab:green", alpha=0.25, lw=0
                )


def _curve_panels(ax_cost: object, ax_side: object, run: RunData) -> None:
    c = run.curve
    t = c["time_s"]
    cost = np.maximum(c["cost"], 1e-12)
    ax_cost.plot(t, cost, "o-", ms=2.5, color="tab:blue", lw=1.2)  # type: ignore[attr-defined]
    if cost.max() > 10 * cost.min():  # a log scale only where the cost spans a decade
        ax_cost.set_yscale("log")  # type: ignore[attr-defined]
    ax_cost.set_xlabel("simulated time (s)")  # type: ignore[attr-defined]
    ax_cost.set_ylabel("cost (MSE)", color="tab:blue")  # type: ignore[attr-defined]
    ax_cost.set_title("learning curve", fontsize=9)  # type: ignore[attr-defined]
    if "vr_distance" in c:
        twin = ax_cost.twinx()  # type: ignore[attr-defined]
        twin.plot(t, c["vr_distance"], "s--", ms=2, color="tab:orange", lw=1)
        twin.set_ylabel("van Rossum distance", color="tab:orange")
    if "accuracy" in c:
        ax_side.plot(t, c["accuracy"], "o-", ms=3, color="tab:green")  # type: ignore[attr-defined]
        ax_side.axhline(0.5, color="grey", lw=0.8, ls=":")  # type: ignore[attr-defined]
        ax_side.set_ylim(-0.02, 1.02)  # type: ignore[attr-defined]
        ax_side.set_ylabel("accuracy")  # type: ignore[attr-defined]
        ax_side.set_title("accuracy (last loop period; chance 0.5)", fontsize=9)  # type: ignore[attr-defined]
    else:
        for name in run.names:
            key = f"rate_{name}_hz"
            if key in c:
                ax_side.plot(t, c[key], "-", lw=1.2, label=name)  # type: ignore[attr-defined]
        ax_side.set_ylabel("mean rate (Hz)")  # type: ignore[attr-defined]
        ax_side.legend(fontsize=7, frameon=False)  # type: ignore[attr-defined]
        ax_side.set_title("firing rates", fontsize=9)  # type: ignore[attr-defined]
    ax_side.set_xlabel("simulated time (s)")  # type: ignore[attr-defined]


def _rates(run: RunData, group: str, n: int, start: int) -> np.ndarray:
    _, i = run.spikes(group, start, start + run.period)
    return np.bincount(i, minlength=n) / (run.period * run.dt)


MAX_FIGURE_PIXELS = 200_000_000  #: largest figure drawn (800 MB of RGBA)


def check_figure(out: str | Path, width_in: float, height_in: float, dpi: int, option: str = "--dpi") -> None:
    """Refuse, before drawing, a file type matplotlib cannot write and a figure too large to draw."""
    from matplotlib.backend_bases import FigureCanvasBase

    kinds = FigureCanvasBase.get_supported_filetypes()
    suffix = Path(out).suffix.lower().lstrip(".")
    if suffix not in kinds:
        raise UserError(
            f"{out}: cannot write a figure as {suffix or 'a file without suffix'!r}; use .png, .pdf or .svg"
        )
    pixels = width_in * dpi * height_in * dpi
    if pixels > MAX_FIGURE_PIXELS:
        raise UserError(
            f"{out}: a figure of {width_in * dpi:.0f} x {height_in * dpi:.0f} pixels would need about "
            f"{pixels * 4 / 1e9:.3g} GB; use a smaller {option}"
        )


def plot_run(run_dir: str | Path, out: str | Path | None = None, window: float | None = None, dpi: int = 110) -> Path:
    """Draw the summary figure of a run directory; write it as PNG (default RUN_DIR/plot.png).

    ``window`` (s) is the length of raster shown from the start of the first and the last loop
    period (default: the whole loop period, at most 4 s).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if out is not None:
        check_figure(out, 12, 1, dpi)  # the file type before the work
    run = load_run(run_dir)
    dt = run.dt
    length = run.period if window is None and run.period * dt <= 4.0 else to_steps(window or 4.0, dt)
    length = max(1, min(length, run.period))
    first, last = run.first_window, run.last_window
    spec = run.spec
    kinds = {g.name: "input" if g.kind == "input" else "output" if g.target else "hidden" for g in spec.groups}
    n_hidden = len(spec.hidden_groups)
    heights = [1.1, *({"input": 0.9, "hidden": 1.0, "output": 1.3}[kinds[name]] for name in run.names)]
    check_figure(out if out is not None else run.path / "plot.png", 12, 2.0 * sum(heights) + 0.6, dpi)
    # a figure of its own canvas: no pyplot state, so the backend of a notebook or GUI is untouched
    fig = Figure(figsize=(12, 2.0 * sum(heights) + 0.6), layout="constrained")
    FigureCanvasAgg(fig)
    gs = fig.add_gridspec(len(heights), 3, height_ratios=heights)
    cfg = run.config
    if spec.is_chain():
        arch = "-".join(str(s) for s in run.sizes)
    else:
        arch = ", ".join(f"{g.name} {g.n}" for g in spec.groups) + f"; {len(spec.connections)} connections"
    fig.suptitle(
        f"{run.path.name}: task {cfg.task or Path(cfg.target or '').name}, {arch}, "
        f"{f'{spec.feedback} feedback, ' if n_hidden else ''}{cfg.get('optimizer')} eta {cfg.get('eta'):g}, "
        f"seed {cfg.get('seed')}",
        fontsize=11,
    )
    _curve_panels(fig.add_subplot(gs[0, :2]), fig.add_subplot(gs[0, 2]), run)

    def t_label(start: int, label: str) -> str:
        return f"{label}: t = {start * dt:.1f} to {(start + length) * dt:.1f} s"

    for row, (name, n) in enumerate(zip(run.names, run.sizes, strict=True), start=1):
        kind = kinds[name]
        axes = []
        for col, (start, label) in enumerate(((first, "first period"), (last, "last period"))):
            ax = fig.add_subplot(gs[row, col])
            if kind == "output":
                _shade_windows(ax, run, name, start, length)
                if n <= 10:  # few outputs: the target as light ticks behind the spikes
                    ts, ti = run.target_of(name, start)
                    raster(ax, ts, ti, n, 0, length, dt, color="tab:red")
                    ax.collections[-1].set_alpha(0.35)
            s, i = run.spikes(name, start, start + length)
            timed = row == 1 or kind == "output"
            raster(ax, s, i, n, start, length, dt, title=f"{name}, {t_label(start, label)}" if timed else name)
            ax.set_ylabel("neuron")
            axes.append(ax)
        axes[-1].sharey(axes[0])
        if kind == "output":
            ax = fig.add_subplot(gs[row, 2], sharey=axes[0])
            shown = last if run.feed is not None else 0  # fresh trials: the last period's
            _shade_windows(ax, run, name, shown, length)
            title = "target" if len(spec.output_groups) == 1 else f"target of {name}"
            if run.feed is not None:
                title += " (last period)"
            raster(ax, *run.target_of(name, shown), n, 0, length, dt, color="tab:red", title=title)
            for a in (*axes, ax):
                a.set_xlabel("time in the window (s)")
        elif kind == "hidden":
            ax = fig.add_subplot(gs[row, 2])
            r0, r1 = _rates(run, name, n, first), _rates(run, name, n, last)
            top = max(float(r0.max()), float(r1.max()), 1.0)
            bins = np.linspace(0, top * 1.05, 25)
            ax.hist(r0, bins, histtype="stepfilled", color="0.7", label="first period")
            ax.hist(r1, bins, histtype="step", color="tab:blue", lw=1.5, label="last period")
            ax.set_xlabel("firing rate (Hz)")
            ax.set_ylabel("neurons")
            ax.set_title(f"{name} rates", fontsize=9)
            ax.legend(fontsize=7, frameon=False)
        elif row > 1:  # a second input group: nothing beside it
            fig.add_subplot(gs[row, 2]).axis("off")
        else:
            ax = fig.add_subplot(gs[row, 2])
            ax.axis("off")
            c = run.curve
            lines = [
                f"simulated {run.end * dt:.1f} s, {len(c['block']) - 1} blocks",
                f"cost {c['cost'][0]:.4g} -> {c['cost'][-1]:.4g}",
            ]
            if "vr_distance" in c:
                lines.append(f"van Rossum {c['vr_distance'][0]:.3g} -> {c['vr_distance'][-1]:.3g}")
            if "accuracy" in c:
                lines.append(f"accuracy {c['accuracy'][-1]:.2f}")
            if "wall_s" in c:
                lines.append(f"wall time {c['wall_s'][-1]:.0f} s")
            ax.text(0.02, 0.95, "\n".join(lines), va="top", fontsize=9, family="monospace", transform=ax.transAxes)
    out = Path(out) if out is not None else run.path / "plot.png"
    fig.savefig(out, dpi=dpi)
    return out
