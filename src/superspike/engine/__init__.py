"""Engines advance the simulation state over an update interval with fixed weights.

``reference``: the readable per-step oracle of MODEL.md 2.6 on any graph; ``fast``: the same results
by the method of docs/MODEL.md section 5. Use :func:`get_engine` by name.
"""

from __future__ import annotations

from superspike.engine.base import Engine, StepResult
from superspike.engine.fast import FastEngine
from superspike.engine.reference import ReferenceEngine
from superspike.engine.state import State
from superspike.errors import ConfigError

ENGINES: dict[str, type[Engine]] = {"reference": ReferenceEngine, "fast": FastEngine}


def get_engine(name: str) -> type[Engine]:
    """The engine class registered under ``name``."""
    try:
        return ENGINES[name]
    except KeyError:
        raise ConfigError("engine", f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}") from None


__all__ = ["ENGINES", "Engine", "ReferenceEngine", "State", "StepResult", "get_engine"]
