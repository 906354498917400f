"""Built-in tasks: the default demo and the paper's experiments (docs/TASKS.md), one command each.

``superspike tasks`` lists them. Each entry makes a :class:`Task` from a seed and suggests
settings (architecture, feedback, schedule, learning rate); a configuration file and command-line
options override the suggestions. docs/TASKS.md describes what each should look like.
Everything is generated in code, except the ``auryn`` pattern, which ships with the package
(ssbm benchmark data, MIT).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from superspike.errors import ConfigError, InputFileError
from superspike.io.files import check_regular
from superspike.io.ras import write_ras
from superspike.network.graph import MAX_GROUP_SIZE
from superspike.task.raster import Raster, Task, load_raster
from superspike.task.recall import recall_task
from superspike.task.xor import xor_task

MAX_TARGET_PIXELS = 100_000_000  #: largest scaled image of make-target (neurons x bins)
MAX_POISSON_SPIKES = 100_000_000  #: largest expected spike count of a frozen Poisson raster (1.6 GB)


def poisson_raster(n: int, rate: float, duration: float, dt: float, rng: np.random.Generator) -> Raster:
    """Frozen Poisson spike trains: ``n`` neurons at ``rate`` Hz over ``duration`` s.

    Times lie at the centres of time steps of ``dt`` s, so their step is unambiguous.
    """
    period = int(round(duration / dt))
    if period < 1:
        raise ConfigError("dt", f"the time step {dt} s is longer than the duration {duration} s")
    if n > MAX_GROUP_SIZE:
        raise ConfigError("neurons", f"must be at most {MAX_GROUP_SIZE} (the largest group), got {n}")
    if n * rate * duration > MAX_POISSON_SPIKES:
        raise ConfigError(
            "rate",
            f"{n} neurons at {rate:g} Hz for {duration:g} s make about {n * rate * duration:.3g} spikes, "
            f"more than {MAX_POISSON_SPIKES:.0e}; use fewer --neurons, a lower --rate or a shorter --duration",
        )
    counts = rng.poisson(rate * duration, size=n)
    ids = np.repeat(np.arange(n), counts)
    steps = rng.integers(0, period, size=ids.size)
    order = np.lexsort((ids, steps))
    return Raster((steps[order] + 0.5) * dt, ids[order], n, f"poisson({n}x{rate}Hz)")


def picture_raster(
    image: np.ndarray, duration: float, dt: float, rng: np.random.Generator, jitter: bool = True
) -> Raster:
    """A picture as a target raster: row r is neuron r (top row = highest id, as a raster plot
    shows it), column k is the k-th time bin of ``duration / columns`` s; every dark pixel
    (value > 0.5) emits one spike in its bin, at a random time within the bin if ``jitter``."""
    image = np.asarray(image, dtype=float)
    rows, cols = image.shape
    bin_steps = int(round(duration / dt)) // cols
    if bin_steps < 1:
        raise ConfigError("image", f"{cols} columns do not fit in {duration} s at dt = {dt} s")
    r, k = np.nonzero(image > 0.5)
    ids = rows - 1 - r
    offset = rng.integers(0, bin_steps, size=r.size) if jitter else np.full(r.size, bin_steps // 2)
    steps = k * bin_steps + offset
    order = np.lexsort((ids, steps))
    return Raster((steps[order] + 0.5) * dt, ids[order], rows, "picture")


def image_raster(
    path: str | Path,
    neurons: int,
    bins: int | None,
    duration: float,
    dt: float,
    *,
    threshold: float = 0.5,
    invert: bool = False,
    jitter: bool = True,
    seed: int = 1,
) -> tuple[Raster, float]:
    """An image file as a target raster (see :func:`picture_raster`) and its bin width, s.

    The image is scaled to ``neurons`` rows and ``bins`` columns (default: keep the aspect ratio
    at one bin per row-height); pixels darker than ``threshold`` (0 black .. 1 white; with
    ``invert``, brighter) become spikes. Transparent pixels count as white.
    """
    from PIL import Image, UnidentifiedImageError

    check_regular(path, "an image file")
    try:
        with warnings.catch_warnings():
            # Pillow's decompression-bomb guard: a warning above MAX_IMAGE_PIXELS, an error above twice that
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im.load()
                rgba = im.convert("RGBA")
    except FileNotFoundError:
        raise InputFileError(path, "no such file") from None
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise InputFileError(
            path,
            f"the image has more than {Image.MAX_IMAGE_PIXELS} pixels (a decompression bomb?); scale it down first",
        ) from None
    except (UnidentifiedImageError, OSError) as exc:
        raise InputFileError(path, f"not an image Pillow can read ({exc.__class__.__name__})") from None
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    gray = Image.alpha_composite(white, rgba).convert("L")
    if bins is None:
        bins = max(1, round(neurons * gray.width / gray.height))
    if neurons > MAX_GROUP_SIZE:
        raise ConfigError("neurons", f"must be at most {MAX_GROUP_SIZE} (the largest group), got {neurons}")
    if neurons * bins > MAX_TARGET_PIXELS:
        raise ConfigError(
            "bins", f"--neurons {neurons} x --bins {bins} is more than {MAX_TARGET_PIXELS} pixels; use fewer of either"
        )
    if int(duration / dt) // bins < 1:
        raise ConfigError("bins", f"{bins} bins do not fit in {duration} s at dt = {dt} s")
    small = np.asarray(gray.resize((bins, neurons), Image.Resampling.LANCZOS), dtype=float) / 255.0
    dark = small > threshold if invert else small < threshold
    rng = np.random.default_rng([seed, 3])
    raster = picture_raster(dark.astype(float), duration, dt, rng, jitter=jitter)
    return Raster(raster.times, raster.ids, raster.n, str(path)), int(round(duration / dt)) // bins * dt


def save_raster(path: str | Path, raster: Raster, grid: float, note: str, resolution: float | None = None) -> None:
    """Write a raster as a ras file whose header gives the neurons and the loop grid (ssbm style)."""
    res = f", temporal resolution {resolution:.6f}s" if resolution else ""
    write_ras(path, raster.times, raster.ids, f"neurons {raster.n}{res}, time grid {grid:.6f}s\n{note}")


def face_image(rows: int = 200, cols: int = 100) -> np.ndarray:
    """A smiling face drawn with a few circles and arcs (1 = dark), ``rows`` x ``cols``."""
    y, x = np.mgrid[0:rows, 0:cols]
    # normalise to a square canvas: x in [-1, 1], y in [-1, 1] (y up)
    u = (x + 0.5) / cols * 2 - 1
    v = 1 - (y + 0.5) / rows * 2
    r = np.hypot(u, v)
    img = np.zeros((rows, cols))
    img[np.abs(r - 0.85) < 0.05] = 1  # outline
    for ex in (-0.35, 0.35):  # eyes
        img[np.hypot((u - ex) / 0.9, v - 0.3) < 0.13] = 1
    mouth = np.abs(np.hypot(u, v - 0.1) - 0.5) < 0.05
    img[mouth & (v < -0.05)] = 1
    return img


@dataclass(frozen=True)
class BuiltinTask:
    """A named task generator with suggested settings (RunConfig field -> value)."""

    name: str
    summary: str  #: one line for ``superspike tasks``
    make: Callable[[int, float], Task]  #: (seed, dt) -> Task
    #: settings (RunConfig field -> value) below the configuration file and the options, e.g.
    #: {"hidden": (4,), "blocks": 15}; superspike.run.config.resolve applies them
    suggested: dict[str, Any] = field(default_factory=dict)


def _default(seed: int, dt: float) -> Task:
    rng = np.random.default_rng([seed, 1])
    duration = 1.0
    inp = poisson_raster(200, 5.0, duration, dt, rng)
    target = picture_raster(face_image(200, 100), duration, dt, rng)
    return Task(inp, target, duration, "default", "a smiling face drawn by 200 output neurons in 1 s")


def _timing(seed: int, dt: float) -> Task:
    """Fig. 2: 100 frozen Poisson inputs (5 Hz, 500 ms loop) -> 5 equidistant target spikes."""
    rng = np.random.default_rng([seed, 2])
    duration = 0.5
    inp = poisson_raster(100, 5.0, duration, dt, rng)
    k = np.arange(1, 6)
    target = Raster((np.floor(k * duration / 6 / dt) + 0.5) * dt, np.zeros(5, np.int64), 1, "5 equidistant spikes")
    return Task(inp, target, duration, "timing", "5 equidistant spikes from 100 frozen Poisson inputs in 500 ms")


def _timing_hidden(seed: int, dt: float) -> Task:
    task = _timing(seed, dt)
    return Task(task.input, task.target, task.grid, "timing-hidden", task.description)


def _auryn(seed: int, dt: float) -> Task:
    """Fig. 6/7: the ssbm "auryn" benchmark (fixed data; the seed only draws the weights)."""
    data = resources.files("superspike.task") / "data" / "auryn"
    with resources.as_file(data / "input.ras") as path_in, resources.as_file(data / "target.ras") as path_tg:
        inp, _, _ = load_raster(path_in, 100, role="input")
        target, header, _ = load_raster(path_tg, 100)
    grid = header.grid or 3.5
    return Task(inp, target, grid, "auryn", "the Auryn logo drawn by 100 outputs in 3.5 s (ssbm benchmark)")


BUILTIN_TASKS: dict[str, BuiltinTask] = {}


def register(task: BuiltinTask) -> None:
    """Add a built-in task (later registrations replace earlier ones of the same name)."""
    BUILTIN_TASKS[task.name] = task


register(
    BuiltinTask(
        "default",
        "the demo: 200 frozen Poisson inputs (5 Hz) -> 256 hidden -> 200 outputs drawing a smiling face in 1 s",
        _default,
        {"hidden": (256,)},
    )
)
register(
    BuiltinTask(
        "timing",
        "Fig. 2: one neuron learns 5 equidistant spikes from 100 frozen Poisson inputs (500 ms loop)",
        _timing,
        {"hidden": (), "burn_in": 5.0, "block_duration": 10.0, "blocks": 30},
    )
)
register(
    BuiltinTask(
        "timing-hidden",
        "Fig. 1, 4: the same through 4 hidden units; try --feedback random|uniform, --optimizer fixed|rmsprop",
        _timing_hidden,
        {"hidden": (4,), "burn_in": 5.0, "block_duration": 10.0, "blocks": 30},
    )
)
register(
    BuiltinTask(
        "xor",
        "Fig. 5: spiking XOR, 100 inputs -> 4 hidden -> 2 outputs, windows of opportunity, accuracy per block",
        lambda seed, dt: xor_task(seed, dt),
        {"hidden": (4,), "blocks": 25, "test_periods": 5},
    )
)
register(
    BuiltinTask(
        "recall",
        "delayed recall: cue A or B, 80 ms of silence, a go cue; 2 outputs answer which cue came (try --recurrent)",
        lambda seed, dt: recall_task(seed, dt),
        {"hidden": (32,), "burn_in": 5.0, "block_duration": 10.0, "blocks": 30},
    )
)
register(
    BuiltinTask(
        "auryn",
        "Fig. 6, 7: 100 Poisson inputs -> n_h hidden -> 100 outputs drawing the Auryn logo in 3.5 s (ssbm)",
        _auryn,
        {"hidden": (256,)},
    )
)


def get_task(name: str) -> BuiltinTask:
    """The built-in task called ``name``."""
    try:
        return BUILTIN_TASKS[name]
    except KeyError:
        raise ConfigError("task", f"unknown task {name!r}; built-in tasks: {', '.join(BUILTIN_TASKS)}") from None
