"""The run configuration: every option of ``superspike train``, as one validated dataclass.

It is read from TOML (``--config``; keys are the long options with dashes turned into
underscores, model constants in ``[neuron]`` and ``[rule]`` tables), overridden by command-line
options, and written back as the run directory's ``config.toml``, which reruns the run exactly.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import tomli_w

from superspike.errors import ConfigError, InputFileError
from superspike.io.files import read_bytes
from superspike.network import FEEDBACK_MODES
from superspike.params import NeuronParams, RuleParams, params_from_dict, params_to_dict


@dataclass(frozen=True)
class RunConfig:
    """Everything a training run needs. Durations in s, weights in V. Defaults: SPEC 3."""

    task: str | None = None  #: built-in task name (used when no input/target files are given)
    input: str | None = None  #: input ras file
    target: str | None = None  #: target ras file
    nin: int | None = None  #: input neurons (default: from the file or task)
    nout: int | None = None  #: output neurons (default: from the file or task)
    grid: float | None = None  #: loop period, s (default: file header, else 1.89 s)
    id_offset: int = 0  #: added to every target id
    drop_out_of_range: bool = False  #: drop target ids outside the output group (and say so)
    hidden: tuple[int, ...] | None = None  #: hidden layer sizes (None: the task's default, else none)
    feedback: str = "symmetric"  #: symmetric | random | uniform
    feedback_delay: float = 0.0  #: extra delay of hidden delay lines, s
    regularizer: bool = False  #: heterosynaptic activity regulariser on hidden layers
    reg_strength: float = 1.0  #: rho
    reg_exponent: float = 4.0  #: a
    reg_tau: float = 100e-3  #: tau_het, s
    fixed_hidden: bool = False  #: no hidden plasticity
    linear: bool = False  #: sigma' = 1
    optimizer: str = "rmaxprop"  #: rmaxprop | rmsprop | fixed
    eta: float = 1e-3  #: learning rate r0
    w0: float = 0.05  #: initial weight scale, V
    epsilon: float = 1e-12  #: optimiser epsilon
    burn_in: float = 20.0  #: s, weight changes off
    block_duration: float = 20.0  #: s
    blocks: int = 50  #: training blocks
    lr_drop_block: int = 20  #: from this block on, eta = eta / lr_drop_factor (SPEC 3)
    lr_drop_factor: float = 10.0
    seed: int = 1  #: fixes weights, feedback matrices and built-in tasks
    init_weights: str | None = None  #: weights.npz to start from
    init_from: str | None = None  #: NIR graph (.nir) to start from (needs the nir extra)
    engine: str = "fast"  #: simulation engine: fast (default) or reference (the per-step oracle)
    neuron: NeuronParams = field(default_factory=NeuronParams)
    rule: RuleParams = field(default_factory=RuleParams)

    def __post_init__(self) -> None:
        if self.hidden is not None:
            object.__setattr__(self, "hidden", tuple(self.hidden))
        validate(self)


_NESTED = {"neuron": NeuronParams, "rule": RuleParams}
_FIELDS = {f.name: f for f in fields(RunConfig)}
_TYPES: dict[str, tuple[type, ...]] = {}
for _f in fields(RunConfig):
    _t = str(_f.type)
    if _f.name in _NESTED:
        continue
    if "tuple" in _t:
        _TYPES[_f.name] = (list, tuple)
    elif _t.startswith("bool"):
        _TYPES[_f.name] = (bool,)
    elif _t.startswith("int"):
        _TYPES[_f.name] = (int,)
    elif _t.startswith("float"):
        _TYPES[_f.name] = (int, float)
    else:
        _TYPES[_f.name] = (str,)


def validate(cfg: RunConfig) -> None:
    """Reject impossible values, naming the key (types are checked by :func:`config_from_dict`)."""
    for f in fields(cfg):
        v = getattr(cfg, f.name)
        if isinstance(v, float) and not math.isfinite(v):  # NaN passes every comparison below
            raise ConfigError(f.name, f"must be a finite number, got {v}")
    if not 0 <= cfg.seed < 2**63:
        raise ConfigError("seed", f"must be an integer in 0..2**63-1, got {cfg.seed}")
    if abs(cfg.id_offset) > 2**32:
        raise ConfigError("id_offset", f"must lie in -2**32..2**32, got {cfg.id_offset}")
    from superspike.optim.optimizers import OPTIMIZERS  # here: the optimisers import the engine

    if cfg.optimizer not in OPTIMIZERS:
        raise ConfigError("optimizer", f"must be one of {', '.join(OPTIMIZERS)}, got {cfg.optimizer!r}")
    for key in ("burn_in", "block_duration"):
        v = getattr(cfg, key)
        if not (math.isfinite(v) and v >= 0):
            raise ConfigError(key, f"must be a non-negative number of seconds, got {v}")
    if cfg.block_duration <= 0:
        raise ConfigError("block_duration", "must be positive")
    for key in ("blocks", "lr_drop_block"):
        if getattr(cfg, key) < 0:
            raise ConfigError(key, f"must not be negative, got {getattr(cfg, key)}")
    for key in ("eta", "w0", "epsilon", "lr_drop_factor"):
        v = getattr(cfg, key)
        if not (math.isfinite(v) and v >= 0):
            raise ConfigError(key, f"must be a non-negative number, got {v}")
    if cfg.lr_drop_factor == 0:
        raise ConfigError("lr_drop_factor", "must be positive")
    for key in ("nin", "nout"):
        v = getattr(cfg, key)
        if v is not None and v < 1:
            raise ConfigError(key, f"must be a positive number of neurons, got {v}")
    if cfg.grid is not None and not (math.isfinite(cfg.grid) and cfg.grid > 0):
        raise ConfigError("grid", f"must be a positive number of seconds, got {cfg.grid}")
    if cfg.hidden is not None:
        for h in cfg.hidden:
            if isinstance(h, bool) or not isinstance(h, int) or h < 1:
                raise ConfigError("hidden", f"layer sizes must be positive integers, got {h!r}")
    if cfg.feedback not in FEEDBACK_MODES:
        raise ConfigError("feedback", f"must be one of {', '.join(FEEDBACK_MODES)}, got {cfg.feedback!r}")
    if cfg.feedback_delay < 0:
        raise ConfigError("feedback_delay", "must not be negative")
    if cfg.reg_tau <= 0:
        raise ConfigError("reg_tau", "must be positive")
    if cfg.reg_strength < 0 or cfg.reg_exponent < 0:
        raise ConfigError("reg_strength" if cfg.reg_strength < 0 else "reg_exponent", "must not be negative")
    if (cfg.input is None) != (cfg.target is None):
        raise ConfigError("input" if cfg.input is None else "target", "input and target files go together")
    if cfg.task is not None and cfg.input is not None:
        raise ConfigError("task", "give either a built-in task or input/target files, not both")
    if cfg.init_from is not None and cfg.init_weights is not None:
        raise ConfigError("init_from", "give either init_from (a NIR graph) or init_weights (npz), not both")
    dt = cfg.neuron.dt
    update = cfg.rule.update_interval / dt
    if abs(update - round(update)) > 1e-6 or round(update) < 1:
        raise ConfigError("rule.update_interval", f"must be a whole number of time steps of {dt} s")
    for key, tau in (("rule.tau_rise", cfg.rule.tau_rise), ("rule.tau_decay", cfg.rule.tau_decay)):
        if tau <= dt:
            raise ConfigError(key, f"must be larger than the time step neuron.dt = {dt} s, got {tau}")
    if cfg.regularizer and cfg.reg_tau <= dt:
        raise ConfigError("reg_tau", f"must be larger than the time step neuron.dt = {dt} s, got {cfg.reg_tau}")
    for key in ("burn_in", "block_duration"):
        n = getattr(cfg, key) / cfg.rule.update_interval
        if abs(n - round(n)) > 1e-6:
            raise ConfigError(
                key,
                f"must be a whole number of update intervals ({cfg.rule.update_interval} s), got {getattr(cfg, key)}",
            )


def config_from_dict(data: dict[str, Any], source: str = "config") -> RunConfig:
    """Build a RunConfig from a TOML-like mapping; unknown keys and wrong types name the key."""
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key in _NESTED:
            if not isinstance(value, dict):
                raise ConfigError(key, "must be a table", source)
            try:
                kwargs[key] = params_from_dict(_NESTED[key], value, key)
            except ConfigError as exc:
                raise ConfigError(exc.key, exc.problem, source) from None
            continue
        if key not in _FIELDS:
            valid = ", ".join(sorted(_FIELDS))
            raise ConfigError(key, f"unknown key; valid keys: {valid}", source)
        types = _TYPES[key]
        if (bool not in types and isinstance(value, bool)) or not isinstance(value, types):
            want = {list: "a list of integers", bool: "true or false", int: "an integer", str: "a string"}
            what = "a number" if float in types else want.get(types[0], "a number")
            raise ConfigError(key, f"must be {what}, got {value!r}", source)
        if key == "hidden":
            value = tuple(value)
        kwargs[key] = value
    try:
        return RunConfig(**kwargs)
    except ConfigError as exc:
        raise ConfigError(exc.key, exc.problem, source) from None


def load_config(path: str | Path) -> RunConfig:
    """Read a TOML configuration file."""
    path = Path(path)
    raw = read_bytes(path, "a TOML file")
    try:
        data = tomllib.loads(raw.decode("utf-8").removeprefix("\ufeff"))
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputFileError(path, "not UTF-8 text (TOML files are UTF-8)", line) from None
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = re.search(r"\s*\(at line (\d+), column \d+\)$", msg)
        line = int(m.group(1)) if m else None
        raise InputFileError(path, f"not valid TOML: {msg[: m.start()] if m else msg}", line) from None
    return config_from_dict(data, str(path))


def config_to_dict(cfg: RunConfig) -> dict[str, Any]:
    """The configuration as TOML-ready data (unset options left out)."""
    out: dict[str, Any] = {}
    for f in fields(RunConfig):
        v = getattr(cfg, f.name)
        if v is None:
            continue
        if f.name in _NESTED:
            out[f.name] = params_to_dict(v)
        elif isinstance(v, tuple):
            out[f.name] = list(v)
        else:
            out[f.name] = v
    return out


def save_config(cfg: RunConfig, path: str | Path) -> None:
    """Write the configuration as TOML."""
    with open(path, "wb") as fh:
        tomli_w.dump(config_to_dict(cfg), fh)


def merge(base: RunConfig, overrides: dict[str, Any], source: str = "command line") -> RunConfig:
    """``base`` with the given options replaced (None values are ignored)."""
    data = {k: v for k, v in overrides.items() if v is not None}
    for key in data:
        if key not in _FIELDS:
            raise ConfigError(key, "unknown option", source)
    try:
        return replace(base, **data)
    except ConfigError as exc:
        raise ConfigError(exc.key, exc.problem, source) from None
