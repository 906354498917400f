"""The figure of a sweep directory: final cost against the varied parameter, one line per setting of
the other varied parameters (e.g. per feedback mode), mean and spread over seeds.

This is the shape of the paper's Fig. 7b (cost against hidden-layer size, one line per feedback
mode) and Fig. 8a (cost against rho, one line per exponent a). With one categorical parameter
only (Fig. 4: the feedback modes), each setting is a column of points with its mean and s.d.
"""

from __future__ import annotations

import tomllib
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


__all__ = ["choose_axes", "plot_sweep"]
