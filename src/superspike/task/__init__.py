"""Tasks: input and target rasters, their replay on a loop grid, built-in generated tasks."""

from superspike.task.builtin import BUILTIN_TASKS, get_task, picture_raster, poisson_raster
from superspike.task.raster import Raster, Task, load_raster
from superspike.task.replay import Replay

__all__ = ["BUILTIN_TASKS", "Raster", "Replay", "Task", "get_task", "load_raster", "picture_raster", "poisson_raster"]
