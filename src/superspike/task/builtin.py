"""Built-in tasks, generated in code from a seed (no data files needed).

``superspike tasks`` lists them. Each entry makes a :class:`Task` and suggests an architecture
(``hidden``) and schedule; explicit options override the suggestions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from superspike.errors import ConfigError
from superspike.task.raster import Raster, Task


def poisson_raster(n: int, rate: float, duration: float, dt: float, rng: np.random.Generator) -> Raster:
    """Frozen Poisson spike trains: ``n`` neurons at ``rate`` Hz over ``duration`` s.

    Times lie at the centres of time steps of ``dt`` s, so their step is unambiguous.
    """
    period = int(round(duration / dt))
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
    """A named task generator with suggested settings."""

    name: str
    summary: str
    make: Callable[[int, float], Task]  #: (seed, dt) -> Task
    suggested: dict = field(default_factory=dict)  #: option -> value (e.g. hidden, blocks)


def _default(seed: int, dt: float) -> Task:
    rng = np.random.default_rng([seed, 1])
    duration = 1.0
    inp = poisson_raster(200, 5.0, duration, dt, rng)
    target = picture_raster(face_image(200, 100), duration, dt, rng)
    return Task(inp, target, duration, "default", "a smiling face drawn by 200 output neurons in 1 s")


BUILTIN_TASKS: dict[str, BuiltinTask] = {}


def register(task: BuiltinTask) -> None:
    """Add a built-in task (later registrations replace earlier ones of the same name)."""
    BUILTIN_TASKS[task.name] = task


register(
    BuiltinTask(
        "default",
        "200 frozen Poisson inputs (5 Hz) -> 256 hidden -> 200 outputs drawing a smiling face in 1 s",
        _default,
        {"hidden": (256,)},
    )
)


def get_task(name: str) -> BuiltinTask:
    """The built-in task called ``name``."""
    try:
        return BUILTIN_TASKS[name]
    except KeyError:
        raise ConfigError("task", f"unknown task {name!r}; built-in tasks: {', '.join(BUILTIN_TASKS)}") from None
