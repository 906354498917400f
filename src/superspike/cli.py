"""The command line: a thin layer over the Python API.

User mistakes end with one line on stderr (``error: FILE:LINE: problem``) and exit status 2;
a numerical blow-up exits with 3. No tracebacks for either.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any

import click

from superspike.errors import RunInterrupted, SimulationError, UserError
from superspike.network import FEEDBACK_MODES
from superspike.run.config import RunConfig, load_config, merge

_SECONDS = click.FloatRange(min=0)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="superspike")
def cli() -> None:
    """SuperSpike: train spiking networks on spike-time targets with an online three-factor rule."""


@cli.command()
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="TOML file with any of these options.")
@click.option("--task", help="Built-in task (see `superspike tasks`); the default when no files are given.")
@click.option("--input", "input_", type=click.Path(dir_okay=False), help="Input spikes (ras file).")
@click.option("--target", type=click.Path(dir_okay=False), help="Target spikes (ras file).")
@click.option("--nin", type=click.IntRange(min=1), help="Input neurons [default: largest id + 1].")
@click.option("--nout", type=click.IntRange(min=1), help="Output neurons [default: largest id + 1].")
@click.option("--grid", type=float, help="Loop period of input and target, s [default: file header, else 1.89].")
@click.option("--id-offset", type=int, help="Added to every target id.")
@click.option("--drop-out-of-range", is_flag=True, default=None, help="Drop target ids outside the output group.")
@click.option(
    "--hidden",
    type=click.IntRange(min=0),
    multiple=True,
    help="A hidden layer of N neurons; repeat for more layers, in order. None: no hidden layer "
    "(built-in tasks bring their own; --hidden 0 asks for none there). Any other graph: a [network] "
    "table in --config (docs/FORMATS.md).",
)
@click.option(
    "--recurrent",
    is_flag=True,
    default=None,
    help="A plastic connection from each hidden layer onto itself (hidden0-hidden0, ...).",
)
@click.option(
    "--feedback",
    type=click.Choice(list(FEEDBACK_MODES)),
    help="Error feedback to hidden groups: symmetric (transposed forward weights), random or uniform (a "
    "fixed matrix per connection), direct (DFA: the output error through a fixed random matrix per "
    "hidden group) [symmetric].",
)
@click.option("--feedback-delay", type=_SECONDS, help="Extra delay of hidden eligibility lines, s [0].")
@click.option("--regularizer", is_flag=True, default=None, help="Heterosynaptic activity regulariser on hidden layers.")
@click.option("--reg-strength", type=float, help="Regulariser rho [1].")
@click.option("--reg-exponent", type=float, help="Regulariser exponent a [4].")
@click.option("--reg-tau", type=float, help="Regulariser activity trace time constant, s [0.1].")
@click.option("--fixed-hidden", is_flag=True, default=None, help="No hidden plasticity (control).")
@click.option("--linear", is_flag=True, default=None, help="sigma' = 1 (control).")
@click.option(
    "--optimizer", type=click.Choice(["rmaxprop", "rmsprop", "fixed"]), help="Learning-rate strategy [rmaxprop]."
)
@click.option(
    "--rms-tau",
    type=click.FloatRange(min=0, min_open=True),
    help="RMSprop only: memory of its second moment, s [rule.tau_rms, 30, shared with RMaxProp].",
)
@click.option(
    "--rms-bias-correction",
    is_flag=True,
    default=None,
    help="RMSprop only: divide its second moment by 1 - gamma^t after t updates (as Adam does).",
)
@click.option("--eta", type=float, help="Learning rate r0 [1e-3].")
@click.option("--w0", type=float, help="Initial weight scale, V [0.05].")
@click.option("--epsilon", type=float, help="Optimiser epsilon [1e-12].")
@click.option("--burn-in", type=_SECONDS, help="Burn-in without weight changes, s [20].")
@click.option("--block-duration", type=_SECONDS, help="Duration of a training block, s [20].")
@click.option("--blocks", type=click.IntRange(min=0), help="Training blocks [50].")
@click.option("--seed", type=int, help="Seed of weights, feedback and built-in tasks [1].")
@click.option("--init-weights", type=click.Path(dir_okay=False), help="Start from these weights (npz).")
@click.option(
    "--init-from",
    type=click.Path(dir_okay=False),
    help="Start from this NIR graph (.nir; e.g. trained elsewhere). Needs the nir extra.",
)
@click.option(
    "--engine",
    type=click.Choice(["fast", "reference"]),
    help="Simulation engine: fast, or reference (the readable per-step oracle) [fast].",
)
@click.option("--out", type=click.Path(file_okay=False), help="Run directory to write.")
@click.option(
    "--force",
    is_flag=True,
    help="Overwrite an existing run directory (only the files a run writes; a directory holding others is refused).",
)
@click.option(
    "--resume",
    "resume_dir",
    type=click.Path(file_okay=False),
    help="Continue the run in this directory from its last checkpoint (takes only --engine, --quiet).",
)
@click.option(
    "--allow-large",
    is_flag=True,
    help="Run even if the estimated memory or disk exceeds what the machine has, or the final loop "
    "is longer than the training.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or notes.")
def train(
    config_file: str | None,
    out: str | None,
    force: bool,
    resume_dir: str | None,
    quiet: bool,
    allow_large: bool,
    **options: Any,
) -> None:
    """Train a network; write the run directory (--out) and print the learning curve.

    With --out, a checkpoint is written at every block's end; Ctrl-C or SIGTERM writes one and
    stops; --resume DIR continues exactly where the run stopped (a killed run or a full disk
    too). One process at a time writes a run directory; a second one is refused.
    """
    from superspike.run.train import train as run_train

    if resume_dir is not None:
        extra = [k for k, v in options.items() if v not in (None, ())]
        extra += [
            k for k, v in (("config", config_file), ("out", out), ("force", force), ("allow_large", allow_large)) if v
        ]
        if set(extra) - {"engine"}:
            bad = ", ".join("--" + k.rstrip("_").replace("_", "-") for k in sorted(set(extra) - {"engine"}))
            raise click.UsageError(f"--resume continues a run as configured; it does not take {bad}")
        result = run_train(None, resume_dir, resume=True, engine=options["engine"], quiet=quiet)
        _summary(result, quiet)
        return

    options["input"] = options.pop("input_")
    hidden = tuple(options["hidden"])
    if 0 in hidden and hidden != (0,):
        raise click.BadParameter("0 (no hidden layer) cannot be combined with other sizes", param_hint="--hidden")
    options["hidden"] = None if not hidden else () if hidden == (0,) else hidden
    # layers: the task's suggestions < the configuration file < the options (resolved in run_train)
    base = load_config(config_file) if config_file else RunConfig()
    cfg = merge(base, options)
    result = run_train(cfg, out, force=force, quiet=quiet, allow_large=allow_large)
    _summary(result, quiet)


def _summary(result: Any, quiet: bool) -> None:
    if not quiet:
        last = result.curve[-1] if result.curve else None
        if last:
            acc = f", accuracy {last['accuracy']:.2f}" if "accuracy" in last else ""
            click.echo(
                f"final cost {last['cost']:.4g} (van Rossum {last['vr_distance']:.3g}{acc}) "
                f"after {last['time_s']:.1f} s simulated in {last['wall_s']:.1f} s"
            )
        if result.out:
            click.echo(f"run directory: {result.out}")


@cli.command()
def tasks() -> None:
    """List the built-in tasks."""
    from superspike.task import BUILTIN_TASKS

    width = max(len(n) for n in BUILTIN_TASKS)
    for name, task in BUILTIN_TASKS.items():
        click.echo(f"{name:<{width}}  {task.summary}")


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.argument("out", type=click.Path(dir_okay=False))
def export(run_dir: str, out: str) -> None:
    """Write the trained network of RUN_DIR as a NIR graph OUT.nir (needs the nir extra).

    Every group a node (Input, or CubaLIF with the group's constants), every connection a Delay
    and an Affine node named after it, recurrent ones included; SI units; dt, the refractory
    period and the feedback matrices are in the graph's metadata (see docs/INTEROP.md).
    """
    from superspike.outputs.nir import export_run, import_nir
    from superspike.run.train import load_run_network

    if not out.lower().endswith(".nir"):
        raise click.UsageError(f"OUT must be a .nir file, got {out!r}")
    import_nir()  # first: without the extra nothing else matters
    click.echo(f"wrote {export_run(run_dir, out, load_run_network(run_dir))}")


@cli.command()
@click.argument("sweep_file", type=click.Path(dir_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Sweep directory to write.")
@click.option("--workers", type=click.IntRange(min=1), help="Local worker processes [default: the CPUs].")
@click.option("--scheduler", help="Run on this Dask scheduler (tcp://HOST:8786 or a scheduler .json file).")
@click.option(
    "--ensembles/--no-ensembles",
    default=True,
    show_default=True,
    help="Advance compatible points together as ensembles (identical results; see docs/SWEEPS.md).",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress.")
def sweep(sweep_file: str, out: str, workers: int | None, scheduler: str | None, ensembles: bool, quiet: bool) -> None:
    """Run every point of SWEEP_FILE ([base] x [grid] x seeds), one run directory each, in parallel.

    Writes OUT/results.csv (one row per finished run). Rerunning the same command skips finished
    runs and retries failed or missing ones. Exit status 1 if any run failed. See docs/SWEEPS.md.
    """
    from superspike.run.sweep import ProgressPrinter, load_sweep, run_sweep

    if scheduler is not None and workers is not None:
        raise click.UsageError("--workers sets local processes; with --scheduler the cluster's workers run the runs")
    spec = load_sweep(sweep_file)
    printer = None if quiet else ProgressPrinter()
    try:
        result = run_sweep(spec, out, workers=workers, scheduler=scheduler, progress=printer, ensembles=ensembles)
    finally:
        if printer is not None:
            printer.close()
    p = result.progress
    if not quiet:
        click.echo(f"{p.ok} of {p.total} runs ok, {p.failed} failed; results: {result.results}")
    if p.failed:
        sys.exit(1)


@cli.command()
@click.argument("figure")
@click.option(
    "--out",
    default="results",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder of the figure's sweeps (OUT/<sweep file stem>) and of OUT/<figure>.png.",
)
@click.option("--seeds", type=click.IntRange(min=1), help="Seeds 1..N instead of the sweep files' own counts.")
@click.option(
    "--sweeps",
    "sweeps_dir",
    type=click.Path(file_okay=False, exists=True),
    help="Folder of the sweep files [the repository's sweeps/].",
)
@click.option("--workers", type=click.IntRange(min=1), help="Local worker processes [default: the CPUs].")
@click.option("--scheduler", help="Run on this Dask scheduler (tcp://HOST:8786 or a scheduler .json file).")
@click.option("--plot-only", is_flag=True, help="Draw the figure from the runs already in OUT; run nothing.")
@click.option("--dpi", type=click.IntRange(min=20), default=110, show_default=True, help="Resolution of the PNG.")
@click.option("--quiet", "-q", is_flag=True, help="No progress.")
def reproduce(
    figure: str,
    out: str,
    seeds: int | None,
    sweeps_dir: str | None,
    workers: int | None,
    scheduler: str | None,
    plot_only: bool,
    dpi: int,
    quiet: bool,
) -> None:
    """Run a figure of the paper (1, 2, 4, 5, 6, 7, 8) and draw it: its sweep files, each into
    OUT/<file stem> (rerunning runs only what is missing), then OUT/figN.png with the median,
    interquartile range and fraction solved across seeds. See docs/REPRODUCTION.md."""
    from superspike.run.reproduce import figure_sweeps, figure_table, get_figure, plot_reproduced
    from superspike.run.reproduce import reproduce as run_reproduce
    from superspike.run.sweep import ProgressPrinter

    if scheduler is not None and workers is not None:
        raise click.UsageError("--workers sets local processes; with --scheduler the cluster's workers run the runs")
    fig = get_figure(figure)
    if plot_only:
        click.echo(f"wrote {plot_reproduced(fig.name, out, dpi=dpi)}")
        if not quiet:
            click.echo(figure_table(fig.name, out))
        return
    sweeps = figure_sweeps(fig, sweeps_dir, seeds)
    if not quiet:
        runs = sum(len(s.points) for s in sweeps)
        click.echo(f"{fig.name}: {len(sweeps)} sweep file(s) ({', '.join(fig.sweeps)}), {runs} runs")
    printer = None if quiet else ProgressPrinter()
    try:
        results, png = run_reproduce(
            fig.name,
            out,
            sweeps_dir=sweeps_dir,
            seeds=seeds,
            workers=workers,
            scheduler=scheduler,
            progress=printer,
            dpi=dpi,
        )
    finally:
        if printer is not None:
            printer.close()
    failed = sum(r.progress.failed for r in results)
    if not quiet:
        ok = sum(r.progress.ok for r in results)
        click.echo(f"{ok} runs ok, {failed} failed; wrote {png}")
        click.echo(figure_table(fig.name, out))
    if failed:
        sys.exit(1)


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--out", "-o", type=click.Path(dir_okay=False), help="PNG to write [RUN_DIR/plot.png].")
@click.option(
    "--window",
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds of raster to show [the loop period, at most 4 s].",
)
@click.option("--dpi", type=click.IntRange(min=20), default=110, show_default=True, help="Resolution of the PNG.")
def plot(run_dir: str, out: str | None, window: float | None, dpi: int) -> None:
    """Figure of a run: learning curve, rasters of the first and last period beside the target,
    hidden firing-rate histograms. For a sweep directory (with results.csv): the sweep's figure."""
    from pathlib import Path

    if (Path(run_dir) / "results.csv").is_file():
        try:
            from superspike.outputs.sweep_plot import plot_sweep
        except ImportError:
            raise UserError(f"{run_dir}: sweep plots are not available in this version") from None
        target = Path(out) if out else Path(run_dir) / "sweep.png"
        plot_sweep(run_dir, target, dpi=dpi)
        click.echo(f"wrote {target}")
        return
    from superspike.outputs.plots import plot_run

    click.echo(f"wrote {plot_run(run_dir, out, window=window, dpi=dpi)}")


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--out", "-o", type=click.Path(dir_okay=False), help="GIF to write [RUN_DIR/training.gif].")
@click.option(
    "--frames",
    type=click.IntRange(min=1),
    default=60,
    show_default=True,
    help="At most this many frames (cost lines are subsampled evenly).",
)
@click.option("--fps", type=click.FloatRange(min=0.1), default=4, show_default=True, help="Frames per second.")
@click.option("--dpi", type=click.IntRange(min=20), default=80, show_default=True, help="Resolution.")
def animate(run_dir: str, out: str | None, frames: int, fps: float, dpi: int) -> None:
    """Animated GIF of the output raster across training, beside the target (no ffmpeg needed)."""
    from superspike.outputs.animate import animate_run

    click.echo(f"wrote {animate_run(run_dir, out, max_frames=frames, fps=fps, dpi=dpi)}")


@cli.command()
@click.argument("source", type=click.Path(dir_okay=False))
@click.argument("dest", type=click.Path(dir_okay=False))
@click.option(
    "--dt",
    type=click.FloatRange(min=0, min_open=True),
    help="Time step for writing .spk, s [the source's own, else 1e-4].",
)
def convert(source: str, dest: str, dt: float | None) -> None:
    """Convert spike files: SOURCE and DEST are .ras, .spk or .npz (by suffix).

    Times become steps as floor(t/dt) (as the simulator reads them); steps become times at the
    centre of their step, so converting back gives the same steps.
    """
    from superspike.io.convert import convert as run_convert

    n = run_convert(source, dest, dt)
    click.echo(f"wrote {n} spikes to {dest}")


@cli.command("make-target")
@click.argument("image", type=click.Path(dir_okay=False))
@click.option("--out", "-o", type=click.Path(dir_okay=False), help="ras file to write [IMAGE with .ras].")
@click.option(
    "--neurons",
    type=click.IntRange(min=1),
    default=200,
    show_default=True,
    help="Output neurons (image rows; the top row is the highest id).",
)
@click.option("--bins", type=click.IntRange(min=1), help="Time bins (image columns) [from the aspect ratio].")
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="Length of the pattern (the loop grid), s.",
)
@click.option(
    "--threshold",
    type=click.FloatRange(0, 1),
    default=0.5,
    show_default=True,
    help="Pixels darker than this (0 black, 1 white) become spikes.",
)
@click.option("--invert", is_flag=True, help="Bright pixels become spikes instead.")
@click.option("--no-jitter", is_flag=True, help="Spikes in the middle of their bin, not at a random time in it.")
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of the jitter.")
@click.option(
    "--dt", type=click.FloatRange(min=0, min_open=True), default=1e-4, show_default=True, help="Time step, s."
)
def make_target(
    image: str,
    out: str | None,
    neurons: int,
    bins: int | None,
    duration: float,
    threshold: float,
    invert: bool,
    no_jitter: bool,
    seed: int,
    dt: float,
) -> None:
    """Turn an image into a target raster: one column per time bin, dark pixels become spikes."""
    from pathlib import Path

    from superspike.task.builtin import image_raster, save_raster

    raster, bin_s = image_raster(
        image, neurons, bins, duration, dt, threshold=threshold, invert=invert, jitter=not no_jitter, seed=seed
    )
    target = Path(out) if out else Path(image).with_suffix(".ras")
    save_raster(target, raster, duration, f"target from {Path(image).name}", resolution=bin_s)
    click.echo(
        f"wrote {len(raster.times)} spikes of {raster.n} neurons in {duration:g} s "
        f"({round(duration / bin_s)} bins of {bin_s * 1e3:.3g} ms) to {target}"
    )


@cli.command("make-input")
@click.option("--out", "-o", type=click.Path(dir_okay=False), required=True, help="ras file to write.")
@click.option("--neurons", type=click.IntRange(min=1), default=200, show_default=True, help="Input neurons.")
@click.option("--rate", type=click.FloatRange(min=0), default=5.0, show_default=True, help="Firing rate, Hz.")
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="Length of the pattern (the loop grid), s.",
)
@click.option("--seed", type=int, default=1, show_default=True, help="Seed: the same seed, the same spikes.")
@click.option(
    "--dt",
    type=click.FloatRange(min=0, min_open=True),
    default=1e-4,
    show_default=True,
    help="Time step, s (spikes lie at step centres).",
)
def make_input(out: str, neurons: int, rate: float, duration: float, seed: int, dt: float) -> None:
    """Frozen Poisson spike trains (a seeded input raster)."""
    import numpy as np

    from superspike.task.builtin import poisson_raster, save_raster

    raster = poisson_raster(neurons, rate, duration, dt, np.random.default_rng(seed))
    save_raster(out, raster, duration, f"frozen Poisson input, {rate:g} Hz, seed {seed}")
    click.echo(f"wrote {len(raster.times)} spikes of {neurons} neurons in {duration:g} s to {out}")


#: what to change when a command runs out of memory anyway (the estimates came out too low)
_MEMORY_HINTS = {
    "train": "the network (neurons: --hidden, --nin/--nout), the number of --blocks or the --block-duration "
    "is too large for this machine's memory",
    "sweep": "a run's network, --blocks or duration is too large for this machine's memory (fewer --workers "
    "share it among fewer runs)",
    "plot": "the figure is too large for this machine's memory: use a smaller --dpi or --window",
    "animate": "the animation is too large for this machine's memory: use a smaller --dpi or fewer --frames",
    "convert": "the spike file is too large for this machine's memory",
    "make-target": "the image or --neurons x --bins is too large for this machine's memory",
    "make-input": "--neurons x --rate x --duration makes too many spikes for this machine's memory",
    "export": "the run's network is too large for this machine's memory",
    "reproduce": "a run's network, --blocks or duration is too large for this machine's memory (fewer --workers "
    "share it among fewer runs)",
}


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning user mistakes into one-line errors.

    Warnings (numpy's RuntimeWarnings, ...) are held back: after a failure the one-line error
    alone is shown; after success each distinct warning is shown as one ``warning:`` line."""
    args = list(sys.argv[1:] if argv is None else argv)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        try:
            _main(args)
        except SystemExit as exc:
            if exc.code not in (0, None):
                caught.clear()
            _show_warnings(caught)
            raise
    _show_warnings(caught)


def _show_warnings(caught: list[warnings.WarningMessage]) -> None:
    seen = set()
    for w in caught:
        text = " ".join(str(w.message).split())
        if text not in seen:
            seen.add(text)
            click.echo(f"warning: {text}", err=True)


def _main(argv: list[str]) -> None:
    try:
        cli.main(args=argv, prog_name="superspike", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.UsageError as exc:
        hint = f" (see 'superspike {exc.ctx.info_name} --help')" if exc.ctx and exc.ctx.parent else ""
        _fail(f"{exc.format_message()}{hint}", 2)
    except click.ClickException as exc:
        _fail(exc.format_message(), exc.exit_code)
    except UserError as exc:
        _fail(str(exc), 2)
    except RunInterrupted as exc:
        click.echo(str(exc), err=True)
        sys.exit(128 + exc.signum)
    except SimulationError as exc:
        _fail(str(exc), 3)
    except OSError as exc:
        # A file or directory the user named cannot be read or written (permissions, disk full).
        if exc.filename is None:
            raise
        _fail(f"{exc.filename}: {exc.strerror or exc}", 2)
    except MemoryError as exc:
        detail = f" ({exc})" if str(exc) else ""
        command = next((a for a in argv if a in cli.commands), None)  # type: ignore[attr-defined]
        hint = _MEMORY_HINTS.get(command or "", "the input is too large for this machine's memory")
        _fail(f"out of memory{detail}: {hint}", 2)


def _fail(message: str, status: int) -> None:
    """One line on stderr (line breaks inside the message become spaces), then exit."""
    click.echo("error: " + " ".join(part.strip() for part in message.splitlines() if part.strip()), err=True)
    sys.exit(status)


if __name__ == "__main__":
    main()
