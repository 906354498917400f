"""An animated GIF of the output raster across training, beside the target (Pillow; no ffmpeg).

One frame per cost line (subsampled to at most ``max_frames``): the output spikes of the last
complete loop period before that line, then a last frame of the final loop period of the run.
Several output groups are drawn one above the other, in the target's numbering.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from superspike.errors import UserError
from superspike.outputs.plots import MAX_FIGURE_PIXELS, RunData, load_run, raster
from superspike.params import steps


def frame_times(run: RunData, max_frames: int) -> list[tuple[int, str]]:
    """(first step of the loop period shown, caption) of every frame."""
    c = run.curve
    frames: list[tuple[int, str]] = []
    for k in range(len(c["time_s"])):
        stop = steps(float(c["time_s"][k]), run.dt, tolerance=0.5)  # the nearest step: times are written rounded
        if stop < run.period:
            continue
        start = (stop // run.period - 1) * run.period
        acc = f", accuracy {c['accuracy'][k]:.2f}" if "accuracy" in c else ""
        frames.append((start, f"block {int(c['block'][k])}: t = {stop * run.dt:.0f} s, cost {c['cost'][k]:.3g}{acc}"))
    final = run.last_window
    if not frames or final > frames[-1][0]:
        frames.append((final, f"after training: t = {run.end * run.dt:.0f} s"))
    if len(frames) > max_frames:
        keep = np.unique(np.round(np.linspace(0, len(frames) - 1, max_frames)).astype(int))
        frames = [frames[k] for k in keep]
    return frames


def animate_run(
    run_dir: str | Path, out: str | Path | None = None, max_frames: int = 60, fps: float = 4.0, dpi: int = 80
) -> Path:
    """Write the GIF (default RUN_DIR/training.gif) and return its path."""
    from matplotlib.animation import FuncAnimation, PillowWriter
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    target = Path(out) if out is not None else Path(run_dir) / "training.gif"
    if target.suffix.lower() != ".gif":
        raise UserError(f"{target}: the animation is written as a GIF; name it .gif")
    run = load_run(run_dir)
    frames = frame_times(run, max_frames)
    if not frames:
        raise UserError(f"{run_dir}: the run is shorter than one loop period; nothing to animate")
    pixels = 9 * dpi * 4.2 * dpi  # the frames are kept in memory until the GIF is written
    if pixels * 4 * len(frames) > 4 * MAX_FIGURE_PIXELS:
        raise UserError(
            f"{target}: {len(frames)} frames of {9 * dpi} x {4.2 * dpi:.0f} pixels would need about "
            f"{pixels * 4 * len(frames) / 1e9:.3g} GB; use a smaller --dpi or fewer --frames"
        )
    n, dt, length = run.spec.nout, run.dt, run.period
    # read every frame's spikes first: an error inside the animation writer is masked by its own
    shown = [run.output_spikes(start, start + length) for start, _ in frames]
    # a figure of its own canvas: no pyplot state, so the backend of a notebook or GUI is untouched
    fig = Figure(figsize=(9, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    ax_out, ax_tg = fig.subplots(1, 2, sharey=True)
    raster(ax_tg, *run.target, n, 0, length, dt, color="tab:red", title="target")
    ax_tg.set_xlabel("time in the loop period (s)")
    outputs = ", ".join(g.name for g in run.spec.output_groups)
    raster(ax_out, np.empty(0, np.int64), np.empty(0, np.int64), n, 0, length, dt, title=outputs)
    ax_out.set_xlabel("time in the loop period (s)")
    ax_out.set_ylabel("neuron")
    dots = ax_out.collections[-1]
    caption = fig.suptitle("", fontsize=11)

    def draw(k: int) -> list:
        start, text = frames[k]
        s, i = shown[k]
        dots.set_offsets(np.column_stack([(s - start) * dt, i]) if len(s) else np.empty((0, 2)))
        caption.set_text(text)
        return [dots, caption]

    anim = FuncAnimation(fig, draw, frames=len(frames), blit=False)
    out = Path(out) if out is not None else run.path / "training.gif"
    anim.save(out, writer=PillowWriter(fps=fps), dpi=dpi)
    return out
