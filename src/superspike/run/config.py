"""The run configuration: every option of ``superspike train`` as one validated dataclass, and the
one function that resolves it (:func:`resolve`).

Settings come in layers, lowest first: a built-in task's suggested settings < the configuration
file (``--config``) < the command-line options (or the fields a Python caller sets). A field
left unset is None. :func:`combine` stacks two layers; :func:`resolve` fills what is still unset
from the task's suggestions, then from :data:`DEFAULTS`, loads the task and derives the network
graph. The command line, the Python API (``train(RunConfig(task="timing"))``) and sweeps all go
through :func:`resolve`, so the same settings give the same run.

TOML: keys are the long options with dashes turned into underscores, model constants in
``[neuron]`` and ``[rule]`` tables, a graph in a ``[network]`` table of ``[[network.group]]``
and ``[[network.connection]]`` entries (docs/FORMATS.md). A resolved configuration, written as
the run directory's ``config.toml``, records the network as a ``[network]`` table and reruns
the run exactly.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from superspike.errors import ConfigError, InputFileError
from superspike.io.files import atomic_write, read_bytes
from superspike.network import FEEDBACK_MODES, Connection, Group, NetworkSpec
from superspike.optim import OPTIMIZERS, make_optimizer
from superspike.params import NeuronParams, RegularizerParams, RuleParams, params_from_dict, params_to_dict

if TYPE_CHECKING:
    from superspike.task import Task

DEFAULT_GRID = 1.89  #: s, the loop period of ras files that state none (the reference Oxford demo, MODEL.md 3.5)
#: settings that describe the network; a layer that sets ``network`` replaces a lower layer's chain
ARCHITECTURE = ("network", "hidden", "recurrent", "fixed_hidden")


# ---------------------------------------------------------------------------------------------
# the graph as a configuration describes it


@dataclass(frozen=True)
class GroupConfig:
    """A group of a ``[network]`` table: like :class:`~superspike.network.Group`, but the size of
    an input or output group may be left to the task (None), and ``neuron`` holds only the
    constants that differ from the run's ``[neuron]`` table."""

    name: str
    n: int | None = None
    kind: str = "lif"
    target: bool = False
    neuron: Mapping[str, float] | None = None  #: overrides of the run's neuron constants

    def __post_init__(self) -> None:
        # the graph's own checks (name, kind, size range), with a stand-in size if none is given yet
        Group(self.name, 1 if self.n is None else self.n, self.kind, self.target)
        key = f"network.group.{self.name}"
        if self.kind == "lif" and not self.target and self.n is None:
            raise ConfigError(
                f"{key}.n", "a hidden group needs a size (input and output groups may take theirs from the task)"
            )
        if self.neuron is not None:
            if self.kind == "input":
                raise ConfigError(f"{key}.neuron", "an input group has no neuron constants")
            if not isinstance(self.neuron, Mapping):
                raise ConfigError(f"{key}.neuron", "must be a table of neuron constants")
            valid = [f.name for f in fields(NeuronParams) if f.name not in ("dt", "axonal_delay")]
            for k, v in self.neuron.items():
                if k in ("dt", "axonal_delay"):
                    raise ConfigError(f"{key}.neuron.{k}", "is the network's (set it in [neuron]), not a group's")
                if k not in valid:
                    raise ConfigError(f"{key}.neuron.{k}", f"unknown key; valid keys: {', '.join(valid)}")
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    raise ConfigError(f"{key}.neuron.{k}", f"must be a number, got {v!r}")
            object.__setattr__(self, "neuron", {k: float(v) for k, v in self.neuron.items()} or None)

    def params(self, base: NeuronParams) -> NeuronParams | None:
        """This group's neuron constants on top of the run's ``base`` (None: the run's own)."""
        if not self.neuron:
            return None
        try:
            return replace(base, **self.neuron)
        except ConfigError as exc:  # name the group's table, not the run's
            raise ConfigError(f"network.group.{self.name}.{exc.key}", exc.problem) from None


@dataclass(frozen=True)
class GraphConfig:
    """The ``[network]`` table: groups (declaration order) and connections (creation order).

    ``groups`` are :class:`GroupConfig` (a size may be left to the task) or a network's
    :class:`~superspike.network.Group`; ``connections`` are :class:`~superspike.network.Connection`."""

    groups: tuple[GroupConfig, ...]
    connections: tuple[Connection, ...] = ()

    def __post_init__(self) -> None:
        # a network's Group (size given) is taken as it is; its neuron constants become the
        # overrides of those that differ from NeuronParams' defaults
        object.__setattr__(self, "groups", tuple(_group_config(g) for g in self.groups))
        object.__setattr__(self, "connections", tuple(self.connections))
        for g in self.groups:
            if not isinstance(g, GroupConfig):
                raise ConfigError("network.group", f"must be GroupConfig or Group entries, got {type(g).__name__}")
        for c in self.connections:
            if not isinstance(c, Connection):
                raise ConfigError("network.connection", f"must be Connection entries, got {type(c).__name__}")

    @classmethod
    def from_spec(cls, spec: NetworkSpec) -> GraphConfig:
        """The groups and connections of a network spec (its feedback, neuron and rule settings are
        the run's, not the graph's)."""
        groups = []
        for g in spec.groups:
            over = None
            if g.neuron is not None:
                over = {f.name: getattr(g.neuron, f.name) for f in fields(NeuronParams)}
                over = {k: v for k, v in over.items() if v != getattr(spec.neuron, k)} or None
            groups.append(GroupConfig(g.name, g.n, g.kind, g.target, over))
        return cls(tuple(groups), spec.connections)

    @property
    def sized(self) -> bool:
        """Whether every group has its size."""
        return all(g.n is not None for g in self.groups)

    def with_sizes(self, nin: int, nout: int) -> GraphConfig:
        """Sizes of input and output groups left open taken from the task: its ``nin`` input ids
        are split over the input groups in declaration order, its ``nout`` target ids over the
        output groups. A declared size that does not fit is an error naming its key."""
        sizes = {g.name: g.n for g in self.groups}
        for role, total, members in (
            ("input", nin, [g for g in self.groups if g.kind == "input"]),
            ("output", nout, [g for g in self.groups if g.target]),
        ):
            open_ = [g for g in members if g.n is None]
            declared = sum(g.n for g in members if g.n is not None)
            what = "input neurons (its input ids)" if role == "input" else "output neurons (its target ids)"
            if len(open_) > 1:
                raise ConfigError(
                    f"network.group.{open_[1].name}.n",
                    f"give the size of every {role} group but one (the task's {total} {what} are split over "
                    f"the {role} groups in declaration order: {', '.join(g.name for g in members)})",
                )
            if open_:
                if total - declared < 1:
                    raise ConfigError(
                        f"network.group.{open_[0].name}.n",
                        f"the other {role} groups declare {declared} neurons, and the task has {total} {what}: "
                        "none are left for this group",
                    )
                sizes[open_[0].name] = total - declared
            elif declared != total:
                last = members[-1]
                detail = (
                    f"{declared}"
                    if len(members) == 1
                    else f"{declared} in all ({' + '.join(str(g.n) for g in members)})"
                )
                raise ConfigError(f"network.group.{last.name}.n", f"declares {detail}, but the task has {total} {what}")
        return replace(self, groups=tuple(replace(g, n=sizes[g.name]) for g in self.groups))

    def spec(self, cfg: RunConfig) -> NetworkSpec:
        """The :class:`NetworkSpec` of this graph with the run's feedback, neuron and rule settings."""
        neuron = cfg.neuron or NeuronParams()
        groups = tuple(
            Group(g.name, 1 if g.n is None else g.n, g.kind, g.target, g.params(neuron)) for g in self.groups
        )
        reg = None
        if _get(cfg, "regularizer"):
            reg = RegularizerParams(_get(cfg, "reg_strength"), _get(cfg, "reg_exponent"), _get(cfg, "reg_tau"))
        return NetworkSpec(
            groups,
            self.connections,
            feedback=_get(cfg, "feedback"),
            feedback_delay=_get(cfg, "feedback_delay"),
            regularizer=reg,
            linear=_get(cfg, "linear"),
            neuron=neuron,
            rule=cfg.rule or RuleParams(),
        )

    def to_dict(self) -> dict[str, Any]:
        """The ``[network]`` table as TOML-ready data."""
        groups = []
        for g in self.groups:
            entry: dict[str, Any] = {"name": g.name}
            if g.n is not None:
                entry["n"] = g.n
            entry.update(kind=g.kind, target=g.target)
            if g.neuron:
                entry["neuron"] = dict(g.neuron)
            groups.append(entry)
        conns = []
        for c in self.connections:
            entry = {"name": c.name, "pre": c.pre, "post": c.post, "plastic": c.plastic}
            if c.w0 is not None:
                entry["w0"] = c.w0
            conns.append(entry)
        return {"group": groups, "connection": conns}


def _group_config(g: Any) -> Any:
    if not isinstance(g, Group):
        return g
    over = None
    if g.neuron is not None:
        default = NeuronParams()
        over = {f.name: getattr(g.neuron, f.name) for f in fields(NeuronParams)}
        over = {k: v for k, v in over.items() if v != getattr(default, k)} or None
    return GroupConfig(g.name, g.n, g.kind, g.target, over)


_GROUP_KEYS = {"name": (str,), "n": (int,), "kind": (str,), "target": (bool,), "neuron": (dict,)}
_CONN_KEYS = {"name": (str,), "pre": (str,), "post": (str,), "plastic": (bool,), "w0": (int, float)}


def graph_from_dict(data: Any) -> GraphConfig:
    """A ``[network]`` table (TOML data) as a :class:`GraphConfig`; errors name the key
    (``network.connection.skip.pre``)."""
    if not isinstance(data, Mapping):
        raise ConfigError("network", "must be a table with [[network.group]] and [[network.connection]] entries")
    for key in data:
        if key not in ("group", "connection"):
            raise ConfigError(
                f"network.{key}",
                "unknown key; a [network] table has [[network.group]] and [[network.connection]] entries",
            )
    groups = [_entry(e, k, "group", _GROUP_KEYS) for k, e in enumerate(_entries(data, "group"))]
    conns = [_entry(e, k, "connection", _CONN_KEYS) for k, e in enumerate(_entries(data, "connection"))]
    out_groups = tuple(
        GroupConfig(g["name"], g.get("n"), g.get("kind", "lif"), g.get("target", False), g.get("neuron"))
        for g in groups
    )
    out_conns: list[Connection] = []
    for c in conns:
        name = c.get("name", f"{c['pre']}-{c['post']}")
        if "name" not in c and any(o.name == name for o in out_conns):
            raise ConfigError(
                f"network.connection.{name}", f"a second connection from {c['pre']} to {c['post']}: give each a name"
            )
        out_conns.append(Connection(name, c["pre"], c["post"], c.get("plastic", True), c.get("w0")))
    return GraphConfig(out_groups, tuple(out_conns))


def _entries(data: Mapping[str, Any], kind: str) -> list[Any]:
    entries = data.get(kind, [])
    if not isinstance(entries, list):
        raise ConfigError(f"network.{kind}", f"must be a list of tables: write each as [[network.{kind}]]")
    return entries


def _entry(entry: Any, k: int, kind: str, keys: dict[str, tuple[type, ...]]) -> dict[str, Any]:
    """One [[network.group]] or [[network.connection]] table, its keys and types checked."""
    if not isinstance(entry, Mapping):
        raise ConfigError(f"network.{kind}", f"entry {k + 1} must be a table ([[network.{kind}]])")
    if kind == "group":
        label = entry.get("name") if isinstance(entry.get("name"), str) else None
        required = ("name",)
    else:
        pre, post = entry.get("pre"), entry.get("post")
        label = entry.get("name") if isinstance(entry.get("name"), str) else None
        if label is None and isinstance(pre, str) and isinstance(post, str):
            label = f"{pre}-{post}"
        required = ("pre", "post")
    where = f"network.{kind}.{label}" if label else f"network.{kind}[{k + 1}]"
    for key in required:
        if key not in entry:
            raise ConfigError(f"{where}.{key}", "missing")
    for key, value in entry.items():
        if key not in keys:
            raise ConfigError(f"{where}.{key}", f"unknown key; valid keys: {', '.join(keys)}")
        types = keys[key]
        if (bool not in types and isinstance(value, bool)) or not isinstance(value, types):
            want = {str: "a string", int: "an integer", bool: "true or false", dict: "a table"}
            what = "a number" if float in types else want[types[0]]
            raise ConfigError(f"{where}.{key}", f"must be {what}, got {value!r}")
    return dict(entry)


# ---------------------------------------------------------------------------------------------
# the configuration


@dataclass(frozen=True)
class RunConfig:
    """Everything a training run needs. Durations in s, weights in V. A field left None is unset:
    :func:`resolve` takes it from the task's suggestions, else from :data:`DEFAULTS` (MODEL.md 2.10)."""

    task: str | None = None  #: built-in task name (used when no input/target files are given)
    input: str | None = None  #: input ras file
    target: str | None = None  #: target ras file
    nin: int | None = None  #: input neurons (default: from the file or task)
    nout: int | None = None  #: output neurons (default: from the file or task)
    grid: float | None = None  #: loop period, s (default: file header, else 1.89 s)
    id_offset: int | None = None  #: added to every target id [0]
    drop_out_of_range: bool | None = None  #: drop target ids outside the output group (and say so)
    hidden: tuple[int, ...] | None = None  #: hidden layer sizes of a chain (None: the task's, else none)
    recurrent: bool | None = None  #: a plastic hidden -> hidden connection on each hidden layer of a chain
    fixed_hidden: bool | None = None  #: no plasticity of the connections into hidden layers of a chain
    network: GraphConfig | None = None  #: any graph ([network] table), instead of hidden/recurrent/fixed_hidden
    feedback: str | None = None  #: symmetric | random | uniform | direct
    feedback_delay: float | None = None  #: extra delay of hidden delay lines, s
    regularizer: bool | None = None  #: heterosynaptic activity regulariser on hidden groups
    reg_strength: float | None = None  #: rho
    reg_exponent: float | None = None  #: a
    reg_tau: float | None = None  #: tau_het, s
    linear: bool | None = None  #: sigma' = 1
    optimizer: str | None = None  #: rmaxprop | rmsprop | fixed
    rms_tau: float | None = None  #: RMSprop's own memory of the second moment, s (None: rule.tau_rms)
    rms_bias_correction: bool | None = None  #: RMSprop: divide the second moment by 1 - gamma^t (Adam)
    eta: float | None = None  #: learning rate r0
    w0: float | None = None  #: initial weight scale, V
    epsilon: float | None = None  #: optimiser epsilon
    burn_in: float | None = None  #: s, weight changes off
    block_duration: float | None = None  #: s
    blocks: int | None = None  #: training blocks
    lr_drop_block: int | None = None  #: from this block on, eta = eta / lr_drop_factor (MODEL.md 2.10)
    lr_drop_factor: float | None = None
    test_periods: int | None = None  #: whole loop periods of the final test, plasticity off (MODEL.md 2.10)
    seed: int | None = None  #: fixes weights, feedback matrices and built-in tasks
    init_weights: str | None = None  #: weights.npz to start from
    init_from: str | None = None  #: NIR graph (.nir) to start from (needs the nir extra)
    engine: str | None = None  #: simulation engine: fast (default) or reference (the per-step oracle)
    neuron: NeuronParams | None = None
    rule: RuleParams | None = None

    def __post_init__(self) -> None:
        if isinstance(self.hidden, (list, tuple)):
            object.__setattr__(self, "hidden", tuple(self.hidden))
        if isinstance(self.network, NetworkSpec):
            object.__setattr__(self, "network", GraphConfig.from_spec(self.network))
        elif isinstance(self.network, Mapping):
            object.__setattr__(self, "network", graph_from_dict(self.network))
        validate(self)

    def get(self, key: str) -> Any:
        """The value of a field, or its default if unset."""
        return _get(self, key)


#: what an unset field becomes when neither the task nor a layer sets it (MODEL.md 2.10)
DEFAULTS: dict[str, Any] = {
    "id_offset": 0,
    "drop_out_of_range": False,
    "feedback": "symmetric",
    "feedback_delay": 0.0,
    "regularizer": False,
    "reg_strength": 1.0,
    "reg_exponent": 4.0,
    "reg_tau": 100e-3,
    "linear": False,
    "optimizer": "rmaxprop",
    "rms_bias_correction": False,
    "eta": 1e-3,
    "w0": 0.05,
    "epsilon": 1e-12,
    "burn_in": 20.0,
    "block_duration": 20.0,
    "blocks": 50,
    "lr_drop_block": 20,
    "lr_drop_factor": 10.0,
    "test_periods": 1,
    "seed": 1,
    "engine": "fast",
    "neuron": NeuronParams(),
    "rule": RuleParams(),
}
ENGINES = ("fast", "reference")

_NESTED = {"neuron": NeuronParams, "rule": RuleParams}
_FIELDS = {f.name: f for f in fields(RunConfig)}
_TYPES: dict[str, tuple[type, ...]] = {}
for _f in fields(RunConfig):
    _t = str(_f.type)
    if _f.name in (*_NESTED, "network"):
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


def _get(cfg: RunConfig, key: str) -> Any:
    v = getattr(cfg, key)
    return DEFAULTS.get(key) if v is None else v


def validate(cfg: RunConfig) -> None:
    """Reject values of the wrong type and impossible values, naming the key. Unset fields are
    checked as their defaults where other fields depend on them."""
    for key, types in _TYPES.items():
        v = getattr(cfg, key)
        if v is None:
            continue
        if (bool not in types and isinstance(v, bool)) or not isinstance(v, types):
            want = {list: "a list of integers", bool: "true or false", int: "an integer", str: "a string"}
            what = "a number" if float in types else want.get(types[0], "a number")
            raise ConfigError(key, f"must be {what}, got {v!r}")
        if isinstance(v, float) and not math.isfinite(v):  # NaN passes every comparison below
            raise ConfigError(key, f"must be a finite number, got {v}")
    for key, cls in _NESTED.items():
        v = getattr(cfg, key)
        if v is not None and not isinstance(v, cls):
            raise ConfigError(key, f"must be a {cls.__name__}, got {type(v).__name__}")
    if cfg.network is not None and not isinstance(cfg.network, GraphConfig):
        raise ConfigError("network", f"must be a [network] table or a GraphConfig, got {type(cfg.network).__name__}")
    g = cfg.get
    if not 0 <= g("seed") < 2**63:
        raise ConfigError("seed", f"must be an integer in 0..2**63-1, got {g('seed')}")
    if abs(g("id_offset")) > 2**32:
        raise ConfigError("id_offset", f"must lie in -2**32..2**32, got {g('id_offset')}")
    if g("optimizer") not in OPTIMIZERS:
        raise ConfigError("optimizer", f"must be one of {', '.join(OPTIMIZERS)}, got {g('optimizer')!r}")
    if g("engine") not in ENGINES:
        raise ConfigError("engine", f"must be one of {', '.join(ENGINES)}, got {g('engine')!r}")
    for key in ("burn_in", "block_duration"):
        if g(key) < 0:
            raise ConfigError(key, f"must be a non-negative number of seconds, got {g(key)}")
    if g("block_duration") <= 0:
        raise ConfigError("block_duration", "must be positive")
    for key in ("blocks", "lr_drop_block"):
        if g(key) < 0:
            raise ConfigError(key, f"must not be negative, got {g(key)}")
    if not 1 <= g("test_periods") <= 10_000:
        raise ConfigError("test_periods", f"must be a number of loop periods in 1..10000, got {g('test_periods')}")
    if cfg.rms_tau is not None and cfg.rms_tau <= 0:
        raise ConfigError("rms_tau", f"must be a positive number of seconds, got {cfg.rms_tau}")
    for key in ("eta", "w0", "epsilon", "lr_drop_factor"):
        if g(key) < 0:
            raise ConfigError(key, f"must be a non-negative number, got {g(key)}")
    if g("lr_drop_factor") == 0:
        raise ConfigError("lr_drop_factor", "must be positive")
    for key in ("nin", "nout"):
        v = getattr(cfg, key)
        if v is not None and v < 1:
            raise ConfigError(key, f"must be a positive number of neurons, got {v}")
    if cfg.grid is not None and cfg.grid <= 0:
        raise ConfigError("grid", f"must be a positive number of seconds, got {cfg.grid}")
    if cfg.hidden is not None:
        for h in cfg.hidden:
            if isinstance(h, bool) or not isinstance(h, int) or h < 1:
                raise ConfigError("hidden", f"layer sizes must be positive integers, got {h!r}")
    if g("feedback") not in FEEDBACK_MODES:
        raise ConfigError("feedback", f"must be one of {', '.join(FEEDBACK_MODES)}, got {g('feedback')!r}")
    if g("feedback_delay") < 0:
        raise ConfigError("feedback_delay", "must not be negative")
    if g("reg_tau") <= 0:
        raise ConfigError("reg_tau", "must be positive")
    if g("reg_strength") < 0 or g("reg_exponent") < 0:
        raise ConfigError("reg_strength" if g("reg_strength") < 0 else "reg_exponent", "must not be negative")
    if (cfg.input is None) != (cfg.target is None):
        raise ConfigError("input" if cfg.input is None else "target", "input and target files go together")
    if cfg.task is not None and cfg.input is not None:
        raise ConfigError("task", "give either a built-in task or input/target files, not both")
    if cfg.init_from is not None and cfg.init_weights is not None:
        raise ConfigError("init_from", "give either init_from (a NIR graph) or init_weights (npz), not both")
    neuron, rule = g("neuron"), g("rule")
    dt = neuron.dt
    update = rule.update_interval / dt
    if abs(update - round(update)) > 1e-6 or round(update) < 1:
        raise ConfigError("rule.update_interval", f"must be a whole number of time steps of {dt} s")
    for key, tau in (("rule.tau_rise", rule.tau_rise), ("rule.tau_decay", rule.tau_decay)):
        if tau <= dt:
            raise ConfigError(key, f"must be larger than the time step neuron.dt = {dt} s, got {tau}")
    if g("regularizer") and g("reg_tau") <= dt:
        raise ConfigError("reg_tau", f"must be larger than the time step neuron.dt = {dt} s, got {g('reg_tau')}")
    for key in ("burn_in", "block_duration"):
        n = g(key) / rule.update_interval
        if abs(n - round(n)) > 1e-6:
            raise ConfigError(
                key, f"must be a whole number of update intervals ({rule.update_interval} s), got {g(key)}"
            )
    if cfg.network is not None:
        chain = [k for k in ("hidden", "recurrent", "fixed_hidden") if getattr(cfg, k) is not None]
        if chain:
            raise ConfigError(
                chain[0],
                "describes a chain, but the network is given as a graph ([network]); "
                "set one or the other (add the connection to the graph instead)",
            )
        # the graph's structure (names, ends, kinds, who receives an error) is checked now, with
        # stand-in sizes for those the task gives; an unset feedback mode is checked as direct
        # feedback (every hidden group receives an error), since a higher layer may still set it
        spec_cfg = cfg if cfg.feedback is not None else replace_unchecked(cfg, feedback="direct")
        cfg.network.spec(spec_cfg)


def replace_unchecked(cfg: RunConfig, **changes: Any) -> RunConfig:
    """A copy with fields changed, not validated (for checks that need a variant)."""
    new = object.__new__(RunConfig)
    for f in fields(RunConfig):
        object.__setattr__(new, f.name, changes.get(f.name, getattr(cfg, f.name)))
    return new


# ---------------------------------------------------------------------------------------------
# layers


def combine(lower: RunConfig, upper: RunConfig, upper_source: str | None = None) -> RunConfig:
    """``lower`` with every field that ``upper`` sets replaced (a ``[neuron]`` or ``[rule]``
    table as a whole).

    The network's description is one setting: a layer that gives ``network`` replaces the chain
    of the layer below (``hidden``, ``recurrent``, ``fixed_hidden``), and a layer that gives
    ``hidden`` replaces the graph of the layer below. ``recurrent`` or ``fixed_hidden`` alone
    cannot change a graph below (an error naming the key).
    """
    data = {
        f.name: getattr(upper, f.name) if getattr(upper, f.name) is not None else getattr(lower, f.name)
        for f in fields(RunConfig)
    }
    if upper.network is not None:
        data.update(hidden=None, recurrent=None, fixed_hidden=None)
    elif lower.network is not None:
        if upper.hidden is not None:
            data["network"] = None
        else:
            for key in ("recurrent", "fixed_hidden"):
                if getattr(upper, key):
                    raise ConfigError(
                        key,
                        "changes a chain (hidden), but the configuration below describes the network as a "
                        "graph ([network]): add it to the graph there, or give hidden too",
                        upper_source,
                    )
                data[key] = None
    try:
        return RunConfig(**data)
    except ConfigError as exc:
        raise ConfigError(exc.key, exc.problem, upper_source) from None


def merge(base: RunConfig, overrides: Mapping[str, Any], source: str = "command line") -> RunConfig:
    """``base`` with the given options replaced (None values are ignored); see :func:`combine`."""
    data = {k: v for k, v in overrides.items() if v is not None}
    for key in data:
        if key not in _FIELDS:
            raise ConfigError(key, "unknown option", source)
    try:
        upper = RunConfig(**data)
    except ConfigError as exc:
        raise ConfigError(exc.key, exc.problem, source) from None
    return combine(base, upper, source)


# ---------------------------------------------------------------------------------------------
# resolution


@dataclass(frozen=True)
class Resolved:
    """A configuration with every setting decided, the task it runs on and its network graph."""

    config: RunConfig  #: every field set, the network as a sized graph (hidden etc. None)
    task: Task
    spec: NetworkSpec
    notes: tuple[str, ...] = ()  #: things the user should know (dropped spikes, inferred sizes)


def resolve(cfg: RunConfig | None = None) -> Resolved:
    """Decide every setting of ``cfg`` (the one place that does, for the CLI, the Python API and
    sweeps): unset fields take the built-in task's suggestions, then :data:`DEFAULTS`; paths become
    absolute; the task is made or read; the network graph gets its sizes from the task (a chain
    from ``hidden``, ``recurrent``, ``fixed_hidden``). Resolving a resolved configuration changes
    nothing."""
    from superspike.task import Task, get_task, load_raster
    from superspike.task.raster import check_grid

    cfg = cfg if cfg is not None else RunConfig()
    notes: list[str] = []
    # files are recorded as absolute paths, so that config.toml reruns from anywhere
    paths = {
        k: str(Path(v).resolve()) for k in ("input", "target", "init_weights", "init_from") if (v := getattr(cfg, k))
    }
    cfg = replace(cfg, **paths)
    builtin = None
    if cfg.input is None:
        builtin = get_task(cfg.task or "default")
        cfg = replace(cfg, task=builtin.name)
        chain_given = any(getattr(cfg, k) is not None for k in ARCHITECTURE)
        suggested = {}
        for key, value in builtin.suggested.items():
            if key not in _FIELDS:
                raise ConfigError(key, f"unknown setting suggested by task {builtin.name!r}")
            if getattr(cfg, key) is not None:
                continue
            if key in ARCHITECTURE and (cfg.network is not None or (key == "network" and chain_given)):
                continue  # the user's network replaces the task's
            suggested[key] = value
        try:
            cfg = RunConfig(**{**_as_kwargs(cfg), **suggested})
        except ConfigError as exc:
            raise ConfigError(exc.key, exc.problem, f"suggested settings of task {builtin.name!r}") from None
    cfg = replace(cfg, **{k: v for k, v in DEFAULTS.items() if getattr(cfg, k) is None})
    dt = cfg.neuron.dt
    # RMSprop's options with another optimiser are refused only now, with every layer applied
    make_optimizer(
        cfg.optimizer, cfg.rule, cfg.epsilon, rms_tau=cfg.rms_tau, rms_bias_correction=cfg.rms_bias_correction
    )

    if builtin is not None:
        task = builtin.make(cfg.seed, dt)
        for key, value in (("nin", task.nin), ("nout", task.nout), ("grid", task.grid)):
            given = getattr(cfg, key)
            if given is not None and given != value:
                raise ConfigError(key, f"task {builtin.name!r} has {key} = {value}, got {given}")
    else:
        assert cfg.input is not None and cfg.target is not None
        nin, nout = cfg.nin, cfg.nout
        inp, h_in, _ = load_raster(cfg.input, nin, role="input")
        tgt, h_tg, dropped = load_raster(
            cfg.target, nout, id_offset=cfg.id_offset, drop_out_of_range=cfg.drop_out_of_range
        )
        if dropped:
            notes.append(
                f"{cfg.target}: dropped {dropped} target spikes with ids outside 0..{tgt.n - 1} (--drop-out-of-range)"
            )
        for role, raster, given, header in (("input", inp, nin, h_in), ("output", tgt, nout, h_tg)):
            # only a size inferred from the ids can be off by one; a header's `neurons N` is a statement
            if given is None and header.neurons is None and raster.ids.size and raster.ids.min() > 0:
                notes.append(
                    f"{raster.source}: {raster.n} {role} neurons inferred from the largest id, and id 0 has no "
                    f"spike; if the ids start at 1, pass {'--id-offset -1 ' if role == 'output' else ''}"
                    f"--n{role[:3]} {raster.n - 1}"
                )
        grid = cfg.grid or h_tg.grid or h_in.grid or DEFAULT_GRID
        check_grid(inp, grid, dt)
        check_grid(tgt, grid, dt)
        task = Task(inp, tgt, grid, name=Path(cfg.target).parent.name)

    if cfg.network is not None:
        try:
            graph = cfg.network.with_sizes(task.nin, task.nout)
        except ConfigError as exc:
            if builtin is not None:
                raise
            # the file's group sizes come from its header or its largest id unless nin/nout say otherwise
            raise ConfigError(
                exc.key, f"{exc.problem}; if the file does not show every neuron, pass --nin/--nout"
            ) from None
    else:
        hidden = cfg.hidden if cfg.hidden is not None else ()
        if cfg.recurrent and not hidden:
            raise ConfigError("recurrent", "adds a connection to each hidden layer, but there is none (give hidden)")
        graph = GraphConfig.from_spec(
            NetworkSpec.chain(
                task.nin, hidden, task.nout, recurrent=bool(cfg.recurrent), fixed_hidden=bool(cfg.fixed_hidden)
            )
        )
    resolved = replace(
        cfg, nin=task.nin, nout=task.nout, grid=task.grid, network=graph, hidden=None, recurrent=None, fixed_hidden=None
    )
    return Resolved(resolved, task, graph.spec(resolved), tuple(notes))


def network_spec(cfg: RunConfig) -> NetworkSpec:
    """The network of a resolved configuration (a run directory's ``config.toml``). An earlier
    ``config.toml`` without a ``[network]`` table gives its chain (``nin``, ``hidden``, ``nout``)."""
    graph = cfg.network
    if graph is None:
        if cfg.nin is None or cfg.nout is None:
            raise ConfigError("network", "not a resolved configuration (no [network] table, no nin and nout)")
        graph = GraphConfig.from_spec(
            NetworkSpec.chain(
                cfg.nin, cfg.hidden or (), cfg.nout, recurrent=bool(cfg.recurrent), fixed_hidden=bool(cfg.fixed_hidden)
            )
        )
    if not graph.sized:
        open_ = next(g for g in graph.groups if g.n is None)
        raise ConfigError(f"network.group.{open_.name}.n", "not a resolved configuration (a group has no size)")
    return graph.spec(cfg)


def _as_kwargs(cfg: RunConfig) -> dict[str, Any]:
    return {f.name: getattr(cfg, f.name) for f in fields(RunConfig)}


# ---------------------------------------------------------------------------------------------
# TOML


def config_from_dict(data: Mapping[str, Any], source: str = "config") -> RunConfig:
    """Build a RunConfig from a TOML-like mapping; unknown keys and wrong types name the key."""
    kwargs: dict[str, Any] = {}
    try:
        for key, value in data.items():
            if key in _NESTED:
                if not isinstance(value, dict):
                    raise ConfigError(key, "must be a table")
                kwargs[key] = params_from_dict(_NESTED[key], value, key)
            elif key == "network":
                kwargs[key] = graph_from_dict(value)
            elif key not in _FIELDS:
                raise ConfigError(key, f"unknown key; valid keys: {', '.join(sorted(_FIELDS))}")
            else:
                kwargs[key] = value
        return RunConfig(**kwargs)
    except ConfigError as exc:
        raise ConfigError(exc.key, exc.problem, source) from None


MAX_TOML_BYTES = 16 << 20  #: largest configuration or sweep file read (a [network] of 10,000 groups is 2 MB)


def load_config(path: str | Path) -> RunConfig:
    """Read a TOML configuration file."""
    path = Path(path)
    raw = read_bytes(path, "a TOML file", MAX_TOML_BYTES + 1)
    if len(raw) > MAX_TOML_BYTES:
        raise InputFileError(path, f"is larger than {MAX_TOML_BYTES >> 20} MB; not a configuration file?")
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
    """The configuration as TOML-ready data (unset fields left out; tables last)."""
    out: dict[str, Any] = {}
    tables: dict[str, Any] = {}
    for f in fields(RunConfig):
        v = getattr(cfg, f.name)
        if v is None:
            continue
        if f.name in _NESTED:
            tables[f.name] = params_to_dict(v)
        elif f.name == "network":
            tables[f.name] = v.to_dict()
        elif isinstance(v, tuple):
            out[f.name] = list(v)
        else:
            out[f.name] = v
    return {**out, **tables}


def config_to_toml(cfg: RunConfig) -> str:
    """The configuration as TOML text; the graph as ``[[network.group]]`` and
    ``[[network.connection]]`` tables, one per group and connection."""
    import tomli_w

    data = config_to_dict(cfg)
    network = data.pop("network", None)
    text = tomli_w.dumps(data)
    if network is not None:
        for kind in ("group", "connection"):
            for entry in network[kind]:
                entry = dict(entry)
                neuron = entry.pop("neuron", None)
                text += f"\n[[network.{kind}]]\n" + tomli_w.dumps(entry)
                if neuron:
                    text += f"[network.{kind}.neuron]\n" + tomli_w.dumps(neuron)
    return text


def save_config(cfg: RunConfig, path: str | Path) -> None:
    """Write the configuration as TOML (atomically)."""
    with atomic_write(path, "w") as fh:
        fh.write(config_to_toml(cfg))
