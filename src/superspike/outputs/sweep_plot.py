"""The figure of a sweep directory: final cost against the varied parameter, one line per setting of
the other varied parameters (e.g. per feedback mode), mean and spread over seeds; and the paper's
figures (:func:`plot_figure`, for ``superspike reproduce``): median, interquartile range and
fraction solved across seeds, over one or more sweeps.

This is the shape of the paper's Fig. 7b (cost against hidden-layer size, one line per feedback
mode) and Fig. 8a (cost against rho, one line per exponent a). With one categorical parameter
only (Fig. 4: the feedback modes), each setting is a column of points with its mean and s.d.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from superspike.errors import UserError
from superspike.run.sweep import SPEC_COPY, read_results


def _numeric(value: Any) -> float | None:
    """A grid value as a number for the x axis: numbers as they are, a list of layer sizes as the
    total number of hidden neurons (no hidden layer: 0); None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return float(sum(value))
    return None


def _label(value: Any) -> str:
    if isinstance(value, list):
        return "-".join(str(v) for v in value) or "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"{value:g}" if isinstance(value, float) else str(value)


def choose_axes(keys: list[str], rows: list[dict[str, Any]], x: str | None = None) -> tuple[str | None, list[str]]:
    """The x-axis key and the keys that make the lines. By default x is the numeric grid key with
    the most values (else the first varied key); every other varied key splits the lines."""
    varied = [k for k in keys if len({repr(r[k]) for r in rows}) > 1]
    if x is not None:
        if x not in keys:
            raise UserError(f"--x {x}: not a grid key of this sweep; grid keys: {', '.join(keys) or 'none'}")
    else:
        numeric = [k for k in varied if all(_numeric(r[k]) is not None for r in rows)]
        if numeric:
            x = max(numeric, key=lambda k: (len({repr(r[k]) for r in rows}), -keys.index(k)))
        elif varied:
            x = varied[0]
    return x, [k for k in varied if k != x]


def plot_sweep(sweep_dir: str | Path, out_png: str | Path, *, x: str | None = None, dpi: int = 110) -> Path:
    """Draw ``out_png`` from ``sweep_dir/results.csv``: final cost (mean of the last five cost lines)
    of every ok run against the grid key ``x``; lines: the other varied keys; band or bars: mean
    +- s.d. over seeds; dots: single runs. Failed runs are counted in the title, not drawn."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from superspike.outputs.plots import check_figure

    sweep_dir = Path(sweep_dir)
    out_png = Path(out_png)
    check_figure(out_png, 6.4, 4.4, dpi)
    keys, rows = read_results(sweep_dir)
    ok = [r for r in rows if r.get("status") == "ok" and isinstance(r.get("final_cost"), (int, float))]
    failed = len(rows) - len(ok)
    if not ok:
        raise UserError(f"{sweep_dir}: no finished runs to plot yet ({len(rows)} rows in results.csv)")
    xkey, line_keys = choose_axes(keys, ok, x)
    description = ""
    try:
        with open(sweep_dir / SPEC_COPY, "rb") as fh:
            description = str(tomllib.load(fh).get("description", ""))
    except (OSError, tomllib.TOMLDecodeError):
        pass

    lines: dict[tuple, list[dict[str, Any]]] = {}
    for r in ok:
        lines.setdefault(tuple(repr(r[k]) for k in line_keys), []).append(r)
    numeric_x = xkey is not None and all(_numeric(r[xkey]) is not None for r in ok)
    if xkey is None:
        categories: list[Any] = [None]
    elif numeric_x:
        categories = sorted({_numeric(r[xkey]) for r in ok})
    else:
        categories = []
        for r in ok:
            if r[xkey] not in categories:
                categories.append(r[xkey])

    costs_all = np.array([float(r["final_cost"]) for r in ok])
    log_y = bool(costs_all.min() > 0 and costs_all.max() / costs_all.min() > 30)
    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    rng = np.random.default_rng(0)
    n_lines = len(lines)
    width = 0.8 / n_lines  # categorical x: the lines side by side within a category
    seeds_per_point = []
    for li, members in enumerate(lines.values()):
        color = f"C{li % 10}"
        label = ", ".join(f"{k}={_label(members[0][k])}" for k in line_keys) or None
        xs, means, lows, highs = [], [], [], []
        for ci, cat in enumerate(categories):
            if xkey is None:
                group = members
            elif numeric_x:
                group = [r for r in members if _numeric(r[xkey]) == cat]
            else:
                group = [r for r in members if r[xkey] == cat]
            if not group:
                continue
            costs = np.array([float(r["final_cost"]) for r in group])
            seeds_per_point.append(costs.size)
            pos = float(cat) if numeric_x else ci + (li - (n_lines - 1) / 2) * width
            mean, sd = costs.mean(), (costs.std(ddof=1) if costs.size > 1 else 0.0)
            xs.append(pos)
            means.append(mean)
            # on a log axis a band below zero cannot be drawn: it is cut at the lowest run
            lows.append(max(mean - sd, costs.min()) if log_y else mean - sd)
            highs.append(mean + sd)
            spread = np.zeros(costs.size) if numeric_x else rng.uniform(-0.2, 0.2, costs.size) * width
            ax.plot(pos + spread, costs, ".", color=color, alpha=0.35, ms=5, zorder=1)
        xs_a, m = np.array(xs), np.array(means)
        lo_a, hi_a = np.array(lows), np.array(highs)
        if numeric_x:
            ax.plot(xs_a, m, "o-", color=color, label=label, zorder=3)
            ax.fill_between(xs_a, lo_a, hi_a, color=color, alpha=0.15, lw=0, zorder=2)
        else:
            ax.errorbar(xs_a, m, yerr=[m - lo_a, hi_a - m], fmt="o", color=color, capsize=4, label=label, zorder=3)

    if numeric_x:
        vals = np.array(categories, dtype=float)
        if vals.min() > 0 and vals.max() / vals.min() >= 10:
            ax.set_xscale("log")
        ax.set_xticks(vals, [f"{v:g}" for v in vals])
        ax.minorticks_off()
        ax.set_xlabel(_axis_name(xkey))
    else:
        ax.set_xticks(range(len(categories)), [_label(c) if c is not None else "all runs" for c in categories])
        ax.set_xlim(-0.5, len(categories) - 0.5)
        if xkey is not None:
            ax.set_xlabel(_axis_name(xkey))
    if log_y:
        ax.set_yscale("log")
    ax.set_ylabel("final cost (mean of the last 5 cost lines)")
    lo, hi = min(seeds_per_point), max(seeds_per_point)
    n = f"{lo}" if lo == hi else f"{lo}-{hi}"
    title = description or sweep_dir.name
    sub = f"mean ± s.d. over {n} run{'s' if hi > 1 else ''} per point"
    if log_y:
        sub += " (cut at the lowest run on the log axis)"
    if failed:
        sub += f"; {failed} failed run{'s' if failed > 1 else ''} not shown"
    ax.set_title(f"{title}\n{sub}", fontsize=10)
    if any(label for label in ax.get_legend_handles_labels()[1]):
        ax.legend(fontsize=8, frameon=False)
    ax.grid(alpha=0.3)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=dpi)
    return out_png


_NAMES = {
    "hidden": "hidden neurons",
    "reg_strength": "regulariser strength ρ",
    "reg_exponent": "regulariser exponent a",
    "eta": "learning rate r0",
    "feedback": "feedback",
}


def _axis_name(key: str) -> str:
    return _NAMES.get(key, key)


# ---------------------------------------------------------------------------------------------
# the paper's figures (superspike reproduce): statistics across seeds


COST_FLOOR = 1e-9  #: final costs below this are drawn at it on the log axis (a cost of 0 included)


@dataclass(frozen=True)
class PointStats:
    """Statistics over the seeds of one point (one label, one x value)."""

    label: str
    x: Any  #: the x value (a number, or None for a column per label)
    costs: np.ndarray  #: final costs of the runs that finished (ok)
    failed: int  #: runs that failed (counted as not solved)
    solved: int  #: runs with final cost below the threshold

    @property
    def n(self) -> int:
        return int(self.costs.size) + self.failed

    @property
    def fraction_solved(self) -> float:
        return self.solved / self.n if self.n else float("nan")

    def quantiles(self) -> tuple[float, float, float, float, float]:
        """min, 25 %, median, 75 %, max of the final costs (NaN without finished runs)."""
        if not self.costs.size:
            return (float("nan"),) * 5
        q = np.quantile(self.costs, [0.0, 0.25, 0.5, 0.75, 1.0])
        return tuple(float(v) for v in q)  # type: ignore[return-value]


def _series_rows(series: Any, sweep_dir: Path) -> tuple[list[str], list[dict[str, Any]]]:
    """The grid keys of a series' sweep directory and its rows that match ``series.where``."""
    if not (sweep_dir / "results.csv").is_file():
        raise UserError(f"{sweep_dir}: no results.csv; run the sweep sweeps/{series.sweep}.toml into it first")
    keys, rows = read_results(sweep_dir)
    return keys, [r for r in rows if all(r.get(k) == v for k, v in series.where.items())]


def _series_label(series: Any, row: dict[str, Any], keys: list[str]) -> str:
    """A row's label: the series' format string filled with the row's values; an empty one
    lists the row's grid values (``feedback=random, hidden=4``), or the sweep's name without any."""
    if not series.label:
        return ", ".join(f"{k}={_label(row[k])}" for k in keys if k in row) or series.sweep
    try:
        return series.label.format(**{k: v for k, v in row.items() if k != "run"})
    except (KeyError, IndexError, ValueError) as exc:
        raise UserError(
            f"{series.sweep}: the figure's label {series.label!r} does not fit its results ({exc})"
        ) from None


def series_stats(
    series: Any, sweep_dir: str | Path, x: str | None, solved_below: float, fig: Any = None
) -> list[PointStats]:
    """The :class:`PointStats` of one series (a :class:`~superspike.run.reproduce.Series`) of the
    sweep directory ``sweep_dir``: one per (label, x value), in the order of results.csv. With a
    figure ``fig``, its measure (``fig.measure``) and its test of solved (``fig.is_solved``);
    without, the final cost and ``solved_below``."""
    measure = fig.measure if fig is not None else "final_cost"
    solved = fig.is_solved if fig is not None else (lambda v: v < solved_below)
    groups: dict[tuple[str, Any], list[dict[str, Any]]] = {}
    keys, rows = _series_rows(series, Path(sweep_dir))
    for r in rows:
        label = _series_label(series, r, keys)
        xv = _numeric(r.get(x)) if x is not None else None
        groups.setdefault((label, xv), []).append(r)
    out = []
    for (label, xv), rows in groups.items():
        ok = [r for r in rows if r.get("status") == "ok" and isinstance(r.get(measure), (int, float))]
        costs = np.array([float(r[measure]) for r in ok])
        out.append(PointStats(label, xv, costs, len(rows) - len(ok), int(solved(costs).sum())))
    return out


def figure_stats(fig: Any, sweep_dirs: dict[str, Path]) -> list[list[list[PointStats]]]:
    """Per panel of ``fig`` (a :class:`~superspike.run.reproduce.FigureSpec`), per series (its
    ``series`` then its ``reference``), the points' statistics."""
    return [
        [
            series_stats(s, sweep_dirs[s.sweep], panel.x if s in panel.series else None, fig.solved_below, fig)
            for s in (*panel.series, *panel.reference)
        ]
        for panel in fig.panels
    ]


def _curves(series: Any, sweep_dir: Path) -> dict[str, tuple[np.ndarray, list[np.ndarray]]]:
    """Learning curves (time, cost per run) of the ok runs of a series, by label."""
    from superspike.outputs.rundir import read_curve_rows
    from superspike.run.sweep import RUNS

    out: dict[str, tuple[np.ndarray, list[np.ndarray]]] = {}
    keys, rows = _series_rows(series, sweep_dir)
    for r in rows:
        if r.get("status") != "ok":
            continue
        rows = read_curve_rows(sweep_dir / RUNS / r["run"])
        if not rows:
            continue
        label = _series_label(series, r, keys)
        t = np.array([row["time_s"] for row in rows])
        c = np.array([row["cost"] for row in rows])
        times, costs = out.setdefault(label, (t, []))
        if times.shape == t.shape:
            costs.append(c)
    return out


def plot_figure(fig: Any, sweep_dirs: dict[str, Path], out_png: str | Path, *, dpi: int = 110) -> Path:
    """Draw a paper figure (a :class:`~superspike.run.reproduce.FigureSpec`) from its sweep
    directories (``sweep_dirs``: sweep stem -> directory): per panel the final cost of every run
    (dots), the median over seeds (line or marker) with the interquartile range (band or bar) and
    the range (thin whiskers, columns only), the solved threshold (dashed), and beneath it the
    fraction of runs solved (final cost below ``fig.solved_below``; failed runs count as not solved).
    A panel with ``curves`` also gets the learning curves: median and interquartile range of the
    cost over time across seeds."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from superspike.outputs.plots import check_figure

    out_png = Path(out_png)
    stats = figure_stats(fig, sweep_dirs)
    accuracy = fig.measure == "final_accuracy"
    floor = -np.inf if accuracy else COST_FLOOR  # costs are drawn on a log axis
    threshold = fig.solved_above if accuracy else fig.solved_below
    columns: list[tuple[str, int]] = []
    for pi, panel in enumerate(fig.panels):
        if panel.curves:
            columns.append(("curves", pi))
        columns.append(("cost", pi))
    width = max(7.0, 1.0 + 4.6 * len(columns))
    check_figure(out_png, width, 5.6, dpi)
    figure = Figure(figsize=(width, 5.6), layout="constrained")
    FigureCanvasAgg(figure)
    grid = figure.add_gridspec(2, len(columns), height_ratios=[3, 1.2])
    labels: list[str] = []
    for panel_stats in stats:
        for series in panel_stats:
            for p in series:
                if p.label not in labels:
                    labels.append(p.label)
    colors = {label: f"C{i % 10}" for i, label in enumerate(labels)}
    all_costs = np.concatenate([p.costs for ps in stats for s in ps for p in s] or [np.zeros(0)])
    total_runs = sum(p.n for ps in stats for s in ps for p in s)
    failed = sum(p.failed for ps in stats for s in ps for p in s)
    if not total_runs:
        raise UserError(f"{fig.name}: no finished runs to plot yet")
    ns = sorted({p.n for ps in stats for s in ps for p in s})
    rng = np.random.default_rng(0)
    for col, (kind, pi) in enumerate(columns):
        panel = fig.panels[pi]
        if kind == "curves":
            ax = figure.add_subplot(grid[:, col])
            for s in panel.series:
                for label, (t, costs) in _curves(s, sweep_dirs[s.sweep]).items():
                    c = np.maximum(np.array(costs), floor)
                    q25, med, q75 = np.quantile(c, [0.25, 0.5, 0.75], axis=0)
                    ax.plot(t, med, color=colors[label], label=f"{label}: median")
                    ax.fill_between(t, q25, q75, color=colors[label], alpha=0.2, lw=0, label="interquartile range")
                    for ci in c:
                        ax.plot(t, ci, color=colors[label], alpha=0.12, lw=0.6)
            ax.axhline(threshold, color="0.3", ls="--", lw=0.8)
            ax.set_yscale("log")
            ax.set_xlabel("time, s")
            ax.set_ylabel("cost")
            ax.set_title("learning curves", fontsize=10)
            ax.legend(fontsize=7, frameon=False)
            ax.grid(alpha=0.3)
            continue
        ax = figure.add_subplot(grid[0, col])
        ax_s = figure.add_subplot(grid[1, col], sharex=ax)
        panel_stats = stats[pi]
        main = [
            p
            for s, sp in zip((*panel.series, *panel.reference), panel_stats, strict=True)
            if s in panel.series
            for p in sp
        ]
        refs = [
            p
            for s, sp in zip((*panel.series, *panel.reference), panel_stats, strict=True)
            if s not in panel.series
            for p in sp
        ]
        if panel.x is None:  # a column per label
            cats = list(dict.fromkeys(p.label for p in main))
            for p in main:
                i = cats.index(p.label)
                _column(ax, i, p, colors[p.label], rng, floor)
                ax_s.bar(i, p.fraction_solved, color=colors[p.label], width=0.6)
                ax_s.text(i, min(p.fraction_solved, 0.82) + 0.05, f"{p.solved}/{p.n}", ha="center", fontsize=7)
            ax_s.set_xticks(range(len(cats)), cats, rotation=25 if len(cats) > 3 else 0, fontsize=8, ha="right")
            ax.set_xlim(-0.6, len(cats) - 0.4)
        else:
            by_label: dict[str, list[PointStats]] = {}
            for p in main:
                by_label.setdefault(p.label, []).append(p)
            n_lines = len(by_label)
            xs_all = sorted({p.x for p in main})
            log_x = bool(xs_all and min(xs_all) > 0 and max(xs_all) / min(xs_all) >= 10)
            for li, (label, points) in enumerate(by_label.items()):
                points = sorted(points, key=lambda p: p.x)
                shift = 10 ** ((li - (n_lines - 1) / 2) * 0.025) if log_x else 1.0
                xs = np.array([p.x for p in points]) * shift
                q = np.array([p.quantiles() for p in points])
                color = colors[label]
                for xv, p in zip(xs, points, strict=True):
                    if p.costs.size:
                        ax.plot(
                            np.full(p.costs.size, xv),
                            np.maximum(p.costs, floor),
                            ".",
                            color=color,
                            alpha=0.3,
                            ms=4,
                            zorder=1,
                        )
                ax.plot(xs, np.maximum(q[:, 2], floor), "o-", color=color, ms=4, label=label, zorder=3)
                ax.fill_between(
                    xs,
                    np.maximum(q[:, 1], floor),
                    np.maximum(q[:, 3], floor),
                    color=color,
                    alpha=0.15,
                    lw=0,
                    zorder=2,
                )
                ax_s.plot(xs, [p.fraction_solved for p in points], "o-", color=color, ms=4)
            if log_x:
                ax.set_xscale("log")
            ax.set_xticks(xs_all, [f"{v:g}" for v in xs_all])
            ax.minorticks_off()
            ax_s.set_xlabel(_axis_name(panel.x))
        for p in refs:  # controls without the x key: a horizontal median line and IQR band
            _, q1, med, q3, _ = p.quantiles()
            color = colors[p.label]
            ax.axhline(
                max(med, floor),
                color=color,
                ls=":",
                lw=1.5,
                label=f"{p.label} (median, IQR; {p.solved}/{p.n} solved)",
            )
            ax.axhspan(max(q1, floor), max(q3, floor), color=color, alpha=0.1, lw=0)
        ax.axhline(threshold, color="0.3", ls="--", lw=0.8, label=f"solved: {fig.solved_text}")
        if accuracy:
            ax.set_ylim(-0.03, 1.03)
            ax.set_ylabel("accuracy on the final test (fresh trials)")
        else:
            ax.set_yscale("log")
            ax.set_ylabel("final cost (mean of last 5 cost lines)")
        ax.set_title(panel.title, fontsize=10)
        ax.legend(fontsize=7, frameon=False)
        ax.grid(alpha=0.3)
        ax.tick_params(labelbottom=False)
        ax_s.set_ylim(0, 1.05)
        ax_s.set_ylabel("fraction solved")
        ax_s.grid(alpha=0.3)
    n_text = f"{ns[0]}" if len(ns) == 1 else f"{ns[0]}-{ns[-1]}"
    sub = f"median, interquartile range and runs; {n_text} seeds per point"
    if failed:
        sub += f"; {failed} failed run{'s' if failed > 1 else ''} (counted as not solved)"
    if not accuracy and all_costs.size and all_costs.min() < COST_FLOOR:
        sub += f"; costs below {COST_FLOOR:g} drawn at it"
    figure.suptitle(f"{fig.title}\n{sub}", fontsize=10)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out_png, dpi=dpi)
    return out_png


def _column(ax: Any, i: int, p: PointStats, color: str, rng: np.random.Generator, floor: float = COST_FLOOR) -> None:
    """One label's runs as a column: dots, median marker, IQR bar and min-max whiskers (values
    below ``floor`` drawn at it)."""
    if not p.costs.size:
        return
    c = np.maximum(p.costs, floor)
    ax.plot(i + rng.uniform(-0.15, 0.15, c.size), c, ".", color=color, alpha=0.35, ms=5, zorder=1)
    lo, q1, med, q3, hi = (max(v, floor) for v in p.quantiles())
    ax.vlines(i, lo, hi, color=color, lw=0.8, zorder=2)
    ax.vlines(i, q1, q3, color=color, lw=5, alpha=0.6, zorder=2)
    ax.plot(i, med, "o", color="white", mec=color, ms=6, zorder=3)


__all__ = ["COST_FLOOR", "PointStats", "choose_axes", "figure_stats", "plot_figure", "plot_sweep", "series_stats"]
