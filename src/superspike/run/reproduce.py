"""The paper's figures, one command each: which sweep files make a figure, how its panels are
drawn, and what counts as solved (``superspike reproduce FIG``; docs/REPRODUCTION.md).

A figure is made of ordinary sweeps (docs/SWEEPS.md): :func:`reproduce` runs each of its sweep
files into ``OUT/<file stem>`` (rerunning runs only what is missing, and two figures that share
a sweep share its runs) and then draws ``OUT/<figure>.png`` with
:func:`superspike.outputs.sweep_plot.plot_figure`: per point the median final cost, its
interquartile range and the runs as dots, and beneath it the fraction of runs solved.

The sweep files are the repository's ``sweeps/`` folder (found beside the sources of a checkout)
or any folder given as ``sweeps_dir``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from superspike.errors import ConfigError, UserError
from superspike.run.sweep import MAX_SWEEP_RUNS, Sweep, SweepResult, load_sweep, sweep_from_dict


@dataclass(frozen=True)
class Series:
    """Runs of one sweep drawn as one line (or one column): those whose grid values match
    ``where``; ``label`` is a format string of the row's grid values (``"{feedback}"``: one line
    per feedback mode), or empty for all of them."""

    sweep: str  #: stem of the sweep file (sweeps/<sweep>.toml); its runs are in OUT/<sweep>
    label: str  #: "" (empty): the row's grid values, ``feedback=random, hidden=[4]``
    where: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Panel:
    """One column of a figure: final cost against ``x`` (a grid key; None: one column of runs per
    label), each series a line; ``reference`` series are drawn as horizontal bands (a control
    without the x key, such as no hidden layer against hidden-layer size)."""

    title: str
    series: tuple[Series, ...]
    x: str | None = None
    reference: tuple[Series, ...] = ()
    curves: bool = False  #: also the learning curves (median and IQR of the cost over time)


@dataclass(frozen=True)
class FigureSpec:
    """A figure of the paper: its panels, the paper's claim, and what counts as solved."""

    name: str  #: fig1, fig2, ...
    title: str
    claim: str  #: what the paper shows (SPEC.md 4), for the figure's caption and the report
    panels: tuple[Panel, ...]
    solved_below: float  #: a run is solved when its final cost (mean of the last 5 cost lines) is below this
    #: what is drawn per run: "final_cost", or "final_accuracy" (tasks with windows of opportunity;
    #: a run is then solved when its accuracy is at least ``solved_above``)
    measure: str = "final_cost"
    solved_above: float | None = None

    @property
    def solved_text(self) -> str:
        """What counts as solved, for labels: ``cost < 1`` or ``accuracy >= 0.95``."""
        if self.measure == "final_accuracy":
            return f"accuracy >= {self.solved_above:g}"
        return f"cost < {self.solved_below:g}"

    def is_solved(self, values: Any) -> Any:
        """Which of the runs' values (an array of the measure) count as solved."""
        if self.measure == "final_accuracy":
            return values >= self.solved_above
        return values < self.solved_below

    @property
    def sweeps(self) -> list[str]:
        """The sweep files (stems) this figure runs, in the order they run."""
        out: list[str] = []
        for p in self.panels:
            for s in (*p.series, *p.reference):
                if s.sweep not in out:
                    out.append(s.sweep)
        return out


_TIMING_SOLVED = 1.0  # 5 target spikes: a silent output costs 40.3
_AURYN_SOLVED = 3.0  # the Auryn logo: a silent output costs about 19, 256 symmetric hidden about 2

FIGURES: dict[str, FigureSpec] = {
    f.name: f
    for f in (
        FigureSpec(
            "fig1",
            "Fig. 1: learning-rate strategies, 100-4-1 timing task",
            "RMaxProp and RMSprop learn over a wide range of r0; a fixed learning rate only in a narrow band",
            (
                Panel(
                    "adaptive rates: final cost vs r0",
                    (Series("fig1", "{optimizer}"), Series("fig1_rmsprop", "rmsprop, 5 s memory, bias-corrected")),
                    x="eta",
                ),
                Panel("fixed rate (dw = r0 g): final cost vs r0", (Series("fig1_fixed", "fixed"),), x="eta"),
            ),
            _TIMING_SOLVED,
        ),
        FigureSpec(
            "fig2",
            "Fig. 2: one neuron learns 5 spike times (100-1)",
            "learns precise timing in about 250 s; 20 trials",
            (Panel("20 trials", (Series("fig2", "100-1, RMaxProp r0 = 1e-3"),), curves=True),),
            _TIMING_SOLVED,
        ),
        FigureSpec(
            "fig4",
            "Fig. 4: 100-4-1 timing task, feedback modes",
            "symmetric, random and uniform feedback all solve it; random fails when all feedback weights are negative",
            (Panel("final cost vs learning rate r0", (Series("fig4", "{feedback}"),), x="eta"),),
            _TIMING_SOLVED,
        ),
        FigureSpec(
            "fig5",
            "Fig. 5: spiking XOR, 100-4-2",
            "random and symmetric feedback learn it, no hidden layer cannot, uniform is worse; 20 trials each",
            (
                Panel(
                    "accuracy on fresh test trials",
                    (Series("fig5", "{feedback}"),),
                    reference=(Series("fig5_nohidden", "no hidden layer"),),
                ),
            ),
            float("nan"),
            measure="final_accuracy",
            solved_above=0.95,
        ),
        FigureSpec(
            "fig6",
            "Fig. 6: Auryn pattern, 100-n_h-100, symmetric feedback",
            "n_h >= 32 reproduces the pattern within 1000 s",
            (
                Panel(
                    "final cost vs hidden-layer size",
                    (Series("fig6", "symmetric"),),
                    x="hidden",
                    reference=(Series("fig7_nohidden", "no hidden layer"),),
                ),
            ),
            _AURYN_SOLVED,
        ),
        FigureSpec(
            "fig7",
            "Fig. 7: feedback modes and controls, Auryn pattern",
            "symmetric best; random worse than no hidden layer; the regulariser helps random; linear sigma' degrades",
            (
                Panel(
                    "7b: final cost vs hidden-layer size",
                    (Series("fig6", "symmetric"), Series("fig7b", "{feedback}")),
                    x="hidden",
                    reference=(Series("fig7_nohidden", "no hidden layer"),),
                ),
                Panel(
                    "controls, 256 hidden",
                    (
                        Series("fig6", "symmetric", {"hidden": [256]}),
                        Series("fig7_nohidden", "no hidden layer"),
                        Series("fig7_linear", "linear"),
                        Series("fig7_fixed", "fixed hidden"),
                        Series("fig7_reg", "random + reg."),
                        Series("fig7b", "random", {"hidden": [256], "feedback": "random"}),
                        Series("fig7b", "uniform", {"hidden": [256], "feedback": "uniform"}),
                    ),
                ),
            ),
            _AURYN_SOLVED,
        ),
        FigureSpec(
            "fig8",
            "Fig. 8: regulariser strength rho x exponent a, random feedback",
            "a = 0 becomes unstable near rho = 100; a = 4, rho = 1 is good",
            (Panel("final cost vs rho", (Series("fig8", "a = {reg_exponent:g}"),), x="reg_strength"),),
            _AURYN_SOLVED,
        ),
    )
}


def sweeps_folder() -> Path | None:
    """The ``sweeps/`` folder of the source checkout this package runs from, if there is one."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "sweeps").is_dir() and (parent / "pyproject.toml").is_file():
            return parent / "sweeps"
    return None


def get_figure(name: str) -> FigureSpec:
    """The figure called ``name`` (``fig4``, or just ``4``)."""
    key = name.lower()
    key = key if key.startswith("fig") else f"fig{key}"
    if key not in FIGURES:
        raise ConfigError("FIG", f"unknown figure {name!r}; figures: {', '.join(f[3:] for f in FIGURES)}")
    return FIGURES[key]


def figure_sweeps(fig: FigureSpec, sweeps_dir: str | Path | None = None, seeds: int | None = None) -> list[Sweep]:
    """The checked sweeps of ``fig`` (files ``sweeps_dir/<stem>.toml``), with ``seeds`` (a count:
    seeds 1..n) in place of the files' own when given."""
    folder = Path(sweeps_dir) if sweeps_dir is not None else sweeps_folder()
    if folder is None:
        raise UserError(
            "reproduce: no sweeps folder found beside the package (an installed copy has none); "
            "pass --sweeps DIR (the repository's sweeps/ folder)"
        )
    if seeds is not None and not 1 <= seeds <= MAX_SWEEP_RUNS:
        raise ConfigError("seeds", f"must be a count of at least 1, got {seeds}")
    out = []
    for stem in fig.sweeps:
        path = folder / f"{stem}.toml"
        if not path.is_file():
            what = " (it comes with the XOR task of issue 15, part 1)" if stem == "fig5" else ""
            raise UserError(f"{path}: no such sweep file{what}; {fig.name} needs {', '.join(fig.sweeps)}")
        if seeds is None:
            out.append(load_sweep(path))
            continue
        load_sweep(path)  # every check, with the file's own seeds, names this file
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
        data["seeds"] = seeds
        out.append(sweep_from_dict(data, path))
    return out


def reproduce(
    name: str,
    out: str | Path,
    *,
    sweeps_dir: str | Path | None = None,
    seeds: int | None = None,
    workers: int | None = None,
    scheduler: Any = None,
    progress: Callable[[Any], None] | None = None,
    plot: bool = True,
    dpi: int = 110,
) -> tuple[list[SweepResult], Path | None]:
    """Run every sweep of figure ``name`` into ``out/<sweep stem>`` and draw ``out/<fig>.png``.

    ``seeds``: a count replacing the sweep files' own (fewer for a quick look; more runs only the
    new seeds). ``workers``/``scheduler``: as :func:`superspike.run.sweep.run_sweep`. Returns the
    sweeps' results and the figure's path (None with ``plot=False``)."""
    from superspike.run.sweep import run_sweep

    fig = get_figure(name)
    sweeps = figure_sweeps(fig, sweeps_dir, seeds)  # all checked before anything runs
    out = Path(out)
    results = []
    for stem, sweep in zip(fig.sweeps, sweeps, strict=True):
        results.append(run_sweep(sweep, out / stem, workers=workers, scheduler=scheduler, progress=progress))
    png = plot_reproduced(fig.name, out, dpi=dpi) if plot else None
    return results, png


def plot_reproduced(name: str, out: str | Path, png: str | Path | None = None, *, dpi: int = 110) -> Path:
    """Draw figure ``name`` from the sweep directories ``out/<sweep stem>`` (default: ``out/<fig>.png``)."""
    from superspike.outputs.sweep_plot import plot_figure

    fig = get_figure(name)
    out = Path(out)
    return plot_figure(
        fig, {stem: out / stem for stem in fig.sweeps}, Path(png) if png else out / f"{fig.name}.png", dpi=dpi
    )


def figure_table(name: str, out: str | Path) -> str:
    """The figure's numbers as a Markdown table: per point (label, x) the runs, the median final
    cost, its interquartile range, min-max, and how many runs are solved."""
    from superspike.outputs.sweep_plot import figure_stats

    fig = get_figure(name)
    out = Path(out)
    stats = figure_stats(fig, {stem: out / stem for stem in fig.sweeps})
    lines = []
    for panel, panel_stats in zip(fig.panels, stats, strict=True):
        x = panel.x or ""
        lines.append(f"{panel.title}:\n")
        lines.append(f"| series | {x} | runs | median | IQR | min - max | solved ({fig.solved_text}) |")
        lines.append("|---|---|---|---|---|---|---|")
        for series in panel_stats:
            order = list(dict.fromkeys(p.label for p in series))
            for p in sorted(series, key=lambda p: (order.index(p.label), -(p.x or 0))):
                lo, q1, med, q3, hi = p.quantiles()
                xv = "" if p.x is None else f"{p.x:g}"
                failed = f" ({p.failed} failed)" if p.failed else ""
                lines.append(
                    f"| {p.label} | {xv} | {p.n}{failed} | {med:.3g} | {q1:.3g} - {q3:.3g} | {lo:.3g} - {hi:.3g} "
                    f"| {p.solved} of {p.n} |"
                )
        lines.append("")
    return "\n".join(lines)


__all__ = [
    "FIGURES",
    "FigureSpec",
    "Panel",
    "Series",
    "figure_sweeps",
    "figure_table",
    "get_figure",
    "plot_reproduced",
    "reproduce",
]
