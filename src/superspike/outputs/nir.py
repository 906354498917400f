"""Networks to and from NIR, the Neuromorphic Intermediate Representation (the ``nir`` package,
read by snnTorch, Norse, Lava, Rockpool, SpiNNaker2 and others). Needs the ``nir`` extra.

A network is a graph of groups and connections (docs/MODEL.md, section 4), and so is its NIR
graph. Every group is a node named after the group: an input group a ``nir.Input``, a LIF group
a ``nir.CubaLIF`` with that group's own constants. Every connection ``c`` from ``pre`` to
``post`` is a weight node named after the connection, behind a ``Delay`` node::

    pre -> c:delay (Delay) -> c (Affine) -> post

and every output group ``g`` also feeds an Output node ``g:out``. A recurrent connection (a group
onto itself, or a cycle) is an ordinary edge of the graph. ``:`` occurs in no group or connection
name, so the node names cannot collide (a connection named like a group becomes ``c:w``).

How the neuron (docs/MODEL.md, section 1) maps onto NIR's equations (continuous time, SI units,
spikes are Dirac pulses of unit area, as NIR's authors settled)::

    NIR CubaLIF:  tau_syn dI/dt = -I + w_in * (W s(t - d))      tau_mem dv/dt = (v_leak - v) + r I
    superspike:   dI_syn/dt = -I_syn/tau_syn + sum_j w_ij S_j(t - d)
                  tau_mem dU/dt = (U_rest - U) + I_syn

A spike through NIR's synapse makes I jump by ``w_in * W / tau_syn``, so with ``I = I_syn`` (volts),
``r = 1``, ``W = w^T`` (volts; NIR's weight layout is [post, pre], ours [pre, post]) and
``w_in = tau_syn`` (s) the two are the same equations: every spike adds w_ij to I_syn. ``v_leak`` and
``v_reset`` are U_rest, ``v_threshold`` the threshold (the test is strict, U > threshold, as NIR
writes it). The axonal delay d is the ``Delay`` node of each connection (input spikes are delayed
too; docs/MODEL.md, section 1.4). A group receiving several connections sums them into its one
current I.

What NIR cannot express is in metadata. Each group node: ``group`` (its name), ``index`` (its
place in the declaration order; NIR files do not keep the order of nodes), ``kind``, and for a LIF
group ``target``, ``refractory`` and ``own_constants``. Each weight node: ``connection``,
``index`` (creation order), ``pre``, ``post``, ``plastic``, ``recurrent`` and ``w0`` if set. The
graph: the time step ``dt``, the refractory period (NIR's CubaLIF has none), the discrete update
order, the network's ``neuron`` and ``rule`` constants, ``feedback`` with its fixed matrices
(``feedback_matrices``, by feedback edge name), the regulariser and the source.

Import (:func:`network_from_nir`) accepts any graph made of Input, CubaLIF, Affine or Linear,
Delay and Output nodes in which every weight node joins one group to one CubaLIF (through at
most one Delay), with per-neuron ``r`` and ``w_in`` (they are folded into the weights: jump =
r * w_in * W / tau_syn); the other constants must be one value per group. Graphs without
superspike's metadata (foreign graphs, and chains exported before groups had names: ``lif0``,
``affine0``, ``b1`` in the metadata) import too. With a run's :class:`NetworkSpec` the graph is
checked against it; without one, the graph's own network is rebuilt.

This module imports only the network, parameters, errors and io: a run directory's network is
loaded by the run layer and handed to :func:`export_run`.
"""

from __future__ import annotations

import inspect
import math
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from superspike.errors import ConfigError, InputFileError, UserError
from superspike.io.files import check_regular
from superspike.network import Connection, Group, Network, NetworkSpec
from superspike.params import NeuronParams, RegularizerParams, RuleParams, params_from_dict, params_to_dict

EXTRA_MESSAGE = "needs the nir extra: pip install 'superspike[nir]'"

#: the version of the layout below, in the graph's metadata (chains exported before it have none)
FORMAT = 2

#: the discrete update the exported numbers belong to (docs/MODEL.md, section 1.2), stored in the graph's metadata
DISCRETIZATION = (
    "per time step dt, each CubaLIF group in declaration order: U += dt/tau_mem*((v_leak - U) + r*I); "
    "if not refractory and U > v_threshold: spike, U = v_reset, refractory for `refractory` s "
    "(U held at v_reset); I *= exp(-dt/tau_syn); then, connection by connection in creation order, "
    "spikes emitted delay/dt steps earlier are delivered: I += r*w_in*W/tau_syn (= W, in V) per spike"
)

_GROUP_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
_CONSTANTS = ("tau_mem", "tau_syn", "u_rest", "threshold")


def import_nir(what: str = "NIR export and import") -> ModuleType:
    """The ``nir`` module, or a one-line UserError naming the extra to install."""
    try:
        import nir
    except ImportError:
        raise UserError(f"{what} {EXTRA_MESSAGE}") from None
    return nir


# ---------------------------------------------------------------------------------------------
# export


@dataclass(frozen=True)
class NodeNames:
    """Names of the NIR nodes of a network's groups and connections (see the module docstring)."""

    group: dict[str, str]  #: group name -> its Input or CubaLIF node
    weight: dict[str, str]  #: connection name -> its Affine node
    delay: dict[str, str]  #: connection name -> its Delay node
    output: dict[str, str]  #: output group name -> its Output node


def node_names(spec: NetworkSpec) -> NodeNames:
    """The node names :func:`network_to_nir` gives a network's groups and connections."""
    groups = {g.name: g.name for g in spec.groups}
    weight = {c.name: (f"{c.name}:w" if c.name in groups else c.name) for c in spec.connections}
    delay = {c.name: f"{c.name}:delay" for c in spec.connections}
    output = {g.name: f"{g.name}:out" for g in spec.output_groups}
    return NodeNames(groups, weight, delay, output)


def network_to_nir(network: Network, metadata: dict[str, Any] | None = None) -> Any:
    """The network as a ``nir.NIRGraph`` (SI units; see the module docstring for the mapping).

    ``metadata`` is added to the graph's own metadata (dt, refractory period, feedback, ...).
    """
    nir = import_nir()
    spec = network.spec
    p = spec.neuron
    delay = p.delay_steps * p.dt  # the delay the simulation applies, s
    names = node_names(spec)
    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    for k, g in enumerate(spec.groups):
        meta: dict[str, Any] = {"group": g.name, "index": k, "kind": g.kind}
        if not g.lif:
            nodes[names.group[g.name]] = nir.Input(input_type={"input": np.array([g.n])}, metadata=meta)
            continue
        q = spec.neuron_of(g)
        meta.update(target=g.target, refractory=q.refractory, own_constants=g.neuron is not None)
        nodes[names.group[g.name]] = nir.CubaLIF(
            tau_syn=np.full(g.n, q.tau_syn),
            tau_mem=np.full(g.n, q.tau_mem),
            r=np.ones(g.n),
            v_leak=np.full(g.n, q.u_rest),
            v_threshold=np.full(g.n, q.threshold),
            v_reset=np.full(g.n, q.u_rest),
            w_in=np.full(g.n, q.tau_syn),
            metadata=meta,
        )
    for k, c in enumerate(spec.connections):
        pre, post = spec.shape(c)
        dkey, wkey = names.delay[c.name], names.weight[c.name]
        nodes[dkey] = nir.Delay(
            delay=np.full(pre, delay),
            metadata={"connection": c.name, "note": f"axonal delay of the spikes of {c.pre} on {c.name}, s"},
        )
        meta = {
            "connection": c.name,
            "index": k,
            "pre": c.pre,
            "post": c.post,
            "plastic": c.plastic,
            "recurrent": spec.recurrent(c),
            "note": f"weights of {c.name} ({c.pre} -> {c.post}), transposed to NIR's [post, pre]; V",
        }
        if c.w0 is not None:
            meta["w0"] = c.w0
        nodes[wkey] = nir.Affine(
            weight=np.ascontiguousarray(network.weights[c.name].T, dtype=np.float32),
            bias=np.zeros(post, dtype=np.float32),
            metadata=meta,
        )
        edges += [(names.group[c.pre], dkey), (dkey, wkey), (wkey, names.group[c.post])]
    for g in spec.output_groups:
        okey = names.output[g.name]
        nodes[okey] = nir.Output(output_type={"output": np.array([g.n])}, metadata={"note": f"spikes of {g.name}"})
        edges.append((names.group[g.name], okey))
    meta = {
        "source": f"superspike {_version()}",
        "format": FORMAT,
        "model": "SuperSpike (Zenke & Ganguli 2018): current-based LIF network",
        "units": "SI: times s, potentials V, weights V; spikes are Dirac pulses of unit area",
        "groups": ", ".join(g.name for g in spec.groups),
        "connections": ", ".join(f"{c.name} ({c.pre} -> {c.post})" for c in spec.connections),
        "dt": p.dt,
        "refractory": p.refractory,
        "refractory_note": "absolute refractory period after each spike, U held at v_reset; "
        "NIR's CubaLIF has no refractory period, so it is stated here and in each group node's metadata",
        "axonal_delay": delay,
        "weight_convention": "a spike adds r*w_in*W/tau_syn to the CubaLIF current I (w_in = tau_syn, r = 1: "
        "the Affine weight W is the jump of the synaptic current in V, which enters the membrane directly)",
        "discretization": DISCRETIZATION,
        "neuron": params_to_dict(p),
        "rule": params_to_dict(spec.rule),
        "linear": spec.linear,
        "feedback": spec.feedback,
        "feedback_delay": spec.feedback_delay,
    }
    if spec.regularizer is not None:
        meta["regularizer"] = params_to_dict(spec.regularizer)
    fixed = [e for e in spec.feedback_edges if e.via is None]
    if fixed:
        meta["feedback_matrices"] = {e.name: np.asarray(network.feedback[e.name], np.float32) for e in fixed}
        meta["feedback_matrices_note"] = "fixed feedback matrices [src, dst], carrying the error of src to dst: " + (
            ", ".join(f"{e.name}: {e.src} -> {e.dst}" for e in fixed)
        )
    meta.update(metadata or {})
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta)


def write_nir(network: Network, path: str | Path, metadata: dict[str, Any] | None = None) -> Path:
    """Write the network as a NIR file (HDF5); see :func:`network_to_nir`."""
    nir = import_nir()
    path = Path(path)
    graph = network_to_nir(network, metadata)
    if not path.parent.is_dir():
        raise InputFileError(path, f"cannot write: no directory {path.parent}")
    try:
        nir.write(path, graph)
    except OSError as exc:
        raise InputFileError(path, f"cannot write ({exc.strerror or exc})") from None
    return path


def run_metadata(run_dir: str | Path) -> dict[str, Any]:
    """What a NIR graph records of the run directory it comes from: ``run_dir``, ``task`` and the
    run's ``config_toml`` (read as text; the run layer builds the network itself)."""
    run_dir = Path(run_dir)
    config = run_dir / "config.toml"
    if not run_dir.is_dir():
        raise InputFileError(run_dir, "no such run directory")
    if not config.exists():
        raise InputFileError(run_dir, "not a run directory (no config.toml)")
    try:
        text = config.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InputFileError(config, f"unreadable ({exc})") from None
    task = data.get("task") or data.get("target") or ""
    return {"run_dir": str(run_dir.resolve()), "task": str(task), "config_toml": text}


def export_run(run_dir: str | Path, out: str | Path, network: Network) -> Path:
    """Write ``network``, the final network of the run directory ``run_dir`` (as the run layer
    loads it from config.toml and weights.npz), as a NIR file with the run's metadata."""
    import_nir()
    return write_nir(network, out, run_metadata(run_dir))


def _version() -> str:
    from superspike import __version__

    return __version__


# ---------------------------------------------------------------------------------------------
# import


@dataclass
class NirGroup:
    """A group node of a NIR graph, in superspike's terms."""

    name: str
    key: str  #: node name
    kind: str  #: "input" or "lif"
    n: int
    target: bool = False
    constants: dict[str, float] = field(default_factory=dict)  #: tau_mem, tau_syn, u_rest, threshold
    refractory: float | None = None  #: from the node's metadata (NIR's CubaLIF has none)
    own_constants: bool | None = None  #: from the node's metadata
    scale: np.ndarray | None = field(default=None, repr=False)  #: r * w_in / tau_syn per neuron


@dataclass
class NirConnection:
    """A weight node of a NIR graph, in superspike's terms."""

    name: str
    key: str  #: node name
    pre: str  #: group names
    post: str
    weight: np.ndarray  #: [pre, post], V: the jump of I_syn per spike (r and w_in folded in)
    plastic: bool | None = None  #: from the node's metadata
    w0: float | None = None


@dataclass
class NirNetwork:
    """What a NIR graph says, in superspike's terms: groups and connections in declaration and
    creation order, the axonal delay, and the graph's metadata."""

    groups: list[NirGroup]
    connections: list[NirConnection]
    delay: float | None  #: axonal delay, s (None: the graph has no Delay nodes)
    metadata: dict[str, Any] = field(default_factory=dict)

    def group(self, name: str) -> NirGroup:
        return next(g for g in self.groups if g.name == name)

    def chain(self) -> list[str] | None:
        """Group names in order if the graph is a chain input -> ... -> output, else None."""
        return _chain([(g.name, g.kind) for g in self.groups], [(c.pre, c.post) for c in self.connections])

    def describe(self) -> str:
        return " ".join(f"{g.name}({g.n})" for g in self.groups)


MAX_NIR_BYTES = 1 << 30  #: most bytes the datasets of a NIR file may hold, decompressed (1 GiB)


def check_hdf5(path: Path, max_bytes: int = MAX_NIR_BYTES) -> None:
    """Refuse, before anything reads its data, an HDF5 file that reaches outside itself or
    expands beyond ``max_bytes``: external and soft links, datasets with external storage,
    virtual datasets, datasets whose shape * itemsize (decompressed) add up to more than
    ``max_bytes``. h5py only reads headers here."""
    import h5py

    total = 0

    def walk(group: Any, where: str) -> None:
        nonlocal total
        for name in group:
            at = f"{where}/{name}"
            link = group.get(name, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                raise InputFileError(path, f"{at} is a link to another file ({link.filename}); refused")
            if isinstance(link, h5py.SoftLink):
                raise InputFileError(path, f"{at} is a soft link ({link.path}); a NIR graph has none, refused")
            if not isinstance(link, h5py.HardLink):
                raise InputFileError(path, f"{at} is a link of an unknown kind; refused")
            obj = group[name]
            if isinstance(obj, h5py.Group):
                walk(obj, at)
            elif isinstance(obj, h5py.Dataset):
                if obj.is_virtual:
                    raise InputFileError(path, f"{at} is a virtual dataset (data from other files); refused")
                if obj.external:
                    raise InputFileError(path, f"{at} keeps its data in another file ({obj.external[0][0]!r}); refused")
                size = math.prod(obj.shape or ()) * obj.dtype.itemsize if obj.shape is not None else 0
                total += size
                if total > max_bytes:
                    raise InputFileError(
                        path,
                        f"{at} makes the graph's data exceed {max_bytes} bytes decompressed ({size} in it); refused",
                    )
            else:
                raise InputFileError(path, f"{at} is neither a group nor a dataset; refused")

    try:
        with h5py.File(path, "r") as fh:
            walk(fh, "")
    except InputFileError:
        raise
    except Exception as exc:  # h5py raises OSError, KeyError, ValueError... on foreign bytes
        problem = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputFileError(path, f"not a readable NIR graph ({problem})") from None


def read_nir(path: str | Path, max_bytes: int = MAX_NIR_BYTES) -> Any:
    """Read a NIR file with ``nir.read``; a missing or unreadable file is a one-line error, and
    so is a hostile one (:func:`check_hdf5`, before ``nir.read`` sees it)."""
    nir = import_nir()
    path = Path(path)
    if not path.exists():
        raise InputFileError(path, "no such file")
    if path.is_dir():
        raise InputFileError(path, "is a directory, not a NIR file")
    check_regular(path, "a NIR file")
    # no type inference: it would add Input and Output nodes to the graph and stop at the first
    # mismatch with a less specific message than parse_graph's
    kwargs = {"type_check": False} if "type_check" in inspect.signature(nir.read).parameters else {}
    check_hdf5(path, max_bytes)
    try:
        return nir.read(path, **kwargs)
    except Exception as exc:  # h5py and nir raise OSError, KeyError, ValueError, AssertionError...
        problem = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputFileError(path, f"not a readable NIR graph ({problem})") from None


def _meta(node: Any) -> dict[str, Any]:
    m = getattr(node, "metadata", None)
    return dict(m) if isinstance(m, dict) else {}


def _plain(value: Any) -> Any:
    """A metadata value read from HDF5 (numpy scalars, bytes) as a plain Python value."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


def parse_graph(graph: Any, source: str | Path = "<graph>") -> NirNetwork:
    """Read the groups, connections, weights and constants of ``graph`` (see the module docstring
    for the shapes accepted). Problems are one-line InputFileErrors."""
    nir = import_nir()

    def fail(problem: str) -> InputFileError:
        return InputFileError(source, problem)

    nodes = dict(graph.nodes)
    succ: dict[str, list[str]] = {k: [] for k in nodes}
    pred: dict[str, list[str]] = {k: [] for k in nodes}
    order: dict[str, int] = {}  # first appearance of a node in the edge list
    for edge in graph.edges:
        a, b = (str(e) for e in edge)
        for end in (a, b):
            if end not in nodes:
                raise fail(f"edge ({a!r}, {b!r}) names an unknown node {end!r}")
            order.setdefault(end, len(order))
        succ[a].append(b)
        pred[b].append(a)
    supported = (nir.Input, nir.Output, nir.CubaLIF, nir.Affine, nir.Linear, nir.Delay)
    for k, n in nodes.items():
        if not isinstance(n, supported):
            raise fail(f"node {k!r} is a {type(n).__name__}; supported: Input, Delay, Affine, Linear, CubaLIF, Output")

    def is_weight(k: str) -> bool:
        return isinstance(nodes[k], (nir.Affine, nir.Linear))

    def added_by_nir(k: str) -> bool:
        # NIR's type inference puts an Input node named input_<node> in front of a root node
        n = nodes[k]
        return (
            isinstance(n, nir.Input)
            and "group" not in _meta(n)
            and len(succ[k]) == 1
            and isinstance(nodes[succ[k][0]], nir.CubaLIF)
            and k.startswith(f"input_{succ[k][0]}")
        )

    # -- groups
    keys = [k for k, n in nodes.items() if isinstance(n, (nir.Input, nir.CubaLIF)) and not added_by_nir(k)]
    by_key: dict[str, NirGroup] = {}
    for k in keys:
        n, m = nodes[k], _meta(nodes[k])
        name = m.get("group", k)
        name = _group_name(str(_plain(name)))
        if isinstance(n, nir.Input):
            by_key[k] = NirGroup(name, k, "input", _shape_size(n.input_type.get("input"), f"Input {k!r}", fail))
        else:
            by_key[k] = _lif_group(k, n, name, m, fail)
    seen: dict[str, str] = {}
    for k, g in by_key.items():
        if g.name in seen:
            raise fail(f"nodes {seen[g.name]!r} and {k!r} both stand for a group named {g.name!r}")
        seen[g.name] = k
    for k, g in by_key.items():
        for b in succ[k]:
            if b in by_key:
                raise fail(f"edge {k!r} -> {b!r} joins two groups without a weight node (Affine or Linear) between")
        for a in pred[k]:
            if isinstance(nodes[a], nir.Input) and a not in by_key:
                continue  # added by NIR
            if not (is_weight(a) or isinstance(nodes[a], nir.Delay)):
                raise fail(f"node {k!r} is fed by {type(nodes[a]).__name__} {a!r}; expected weight nodes")
        if g.kind == "input" and pred[k]:
            raise fail(f"Input node {k!r} has incoming edges")

    # -- outputs
    has_output: set[str] = set()
    for k, n in nodes.items():
        if not isinstance(n, nir.Output):
            continue
        if len(pred[k]) != 1:
            raise fail(f"Output node {k!r} has {len(pred[k])} incoming edges; expected one CubaLIF")
        a = pred[k][0]
        if a not in by_key:
            raise fail(f"Output node {k!r} is fed by {type(nodes[a]).__name__} {a!r}; expected a CubaLIF")
        if by_key[a].kind == "input":
            continue  # an Input passed through: nothing to simulate
        size = _shape_size(n.output_type.get("output"), f"Output {k!r}", fail)
        if size != by_key[a].n:
            raise fail(f"Output {k!r} has {size} neurons, the CubaLIF {a!r} before it {by_key[a].n}")
        has_output.add(a)
        if succ[k]:
            raise fail(f"Output node {k!r} has outgoing edges")
    lifs = [g for g in by_key.values() if g.kind == "lif"]
    targets = {g.key: _plain(_meta(nodes[g.key]).get("target")) for g in lifs}
    if lifs and all(isinstance(t, bool) for t in targets.values()):
        for g in lifs:
            g.target = bool(targets[g.key])
    else:
        for g in lifs:
            g.target = g.key in has_output
    if not lifs:
        raise fail("the graph has no CubaLIF node")
    if not any(g.target for g in lifs):
        raise fail("no CubaLIF feeds an Output node; the network needs an output group")

    # -- connections
    conns: list[tuple[NirConnection, str | None, int]] = []  # connection, its Delay node, order
    used_delays: set[str] = set()
    for k, n in nodes.items():
        if not is_weight(k):
            continue
        delays: list[str] = []
        if len(pred[k]) != 1:
            raise fail(f"weight node {k!r} has {len(pred[k])} inputs; expected one group, through at most one Delay")
        a = pred[k][0]
        if isinstance(nodes[a], nir.Delay):
            delays.append(a)
            if len(pred[a]) != 1:
                raise fail(f"Delay node {a!r} has {len(pred[a])} inputs; expected one group")
            a = pred[a][0]
        if a not in by_key:
            raise fail(
                f"weight node {k!r} is fed by {type(nodes[a]).__name__} {a!r}; expected a group (Input or CubaLIF)"
            )
        if len(succ[k]) != 1:
            raise fail(f"weight node {k!r} feeds {len(succ[k])} nodes; expected one CubaLIF, through at most one Delay")
        b = succ[k][0]
        if isinstance(nodes[b], nir.Delay):
            delays.append(b)
            if len(succ[b]) != 1:
                raise fail(f"Delay node {b!r} feeds {len(succ[b])} nodes; expected one CubaLIF")
            b = succ[b][0]
        if is_weight(b):
            raise fail(f"two weight nodes in a row ({k!r} -> {b!r}); expected Affine -> CubaLIF")
        if b not in by_key or by_key[b].kind != "lif":
            raise fail(f"weight node {k!r} feeds {type(nodes[b]).__name__} {b!r}; expected a CubaLIF")
        if len(delays) > 1:
            raise fail(f"two Delay nodes on one connection (at {k!r})")
        used_delays.update(delays)
        pre, post = by_key[a], by_key[b]
        W = np.asarray(n.weight, dtype=np.float64)
        if W.ndim != 2:
            raise fail(f"{k}: weight must be a matrix [post, pre], has shape {W.shape}")
        if W.shape != (post.n, pre.n):
            raise fail(f"{k}: weight has shape {W.shape} [post, pre], but {a!r} has {pre.n} and {b!r} {post.n} neurons")
        if isinstance(n, nir.Affine) and n.bias is not None and np.any(np.asarray(n.bias) != 0):
            raise fail(f"{k}: non-zero bias; the model has no bias current")
        if not np.isfinite(W).all():
            raise fail(f"{k}: weight holds NaN or infinite values")
        # fold r and w_in into the weights: a spike makes r*I jump by r*w_in*W/tau_syn
        weight = np.ascontiguousarray((W * post.scale[:, None]).T, dtype=np.float32)
        m = _meta(n)
        plastic = _plain(m.get("plastic"))
        w0 = _plain(m.get("w0"))
        conn = NirConnection(
            str(_plain(m["connection"])) if "connection" in m else "",
            k,
            pre.name,
            post.name,
            weight,
            bool(plastic) if isinstance(plastic, bool) else None,
            float(w0) if isinstance(w0, (int, float)) and not isinstance(w0, bool) else None,
        )
        conns.append((conn, delays[0] if delays else None, order.get(k, len(order))))
    for k, n in nodes.items():
        if isinstance(n, nir.Delay) and k not in used_delays:
            raise fail(f"Delay node {k!r} is not between a group and a weight node")

    # names of connections without metadata: pre-post (as chains name them) where unique, else the node's
    pairs = [(c.pre, c.post) for c, _, _ in conns]
    for c, _, _ in conns:
        if not c.name:
            c.name = f"{c.pre}-{c.post}" if pairs.count((c.pre, c.post)) == 1 else c.key
        c.name = _connection_name(c.name)
    names = [c.name for c, _, _ in conns]
    for nm in names:
        if names.count(nm) > 1:
            raise fail(f"two weight nodes stand for a connection named {nm!r}")

    # -- order: metadata indices where every node has one, else first appearance in the edge list
    groups = list(by_key.values())
    gidx = [_plain(_meta(nodes[g.key]).get("index")) for g in groups]
    if all(isinstance(i, int) and not isinstance(i, bool) for i in gidx) and len(set(gidx)) == len(gidx):
        groups = [g for _, g in sorted(zip(gidx, groups, strict=True), key=lambda t: t[0])]
    else:
        groups.sort(key=lambda g: (g.kind != "input", order.get(g.key, len(order))))
    cidx = [_plain(_meta(nodes[c.key]).get("index")) for c, _, _ in conns]
    if all(isinstance(i, int) and not isinstance(i, bool) for i in cidx) and len(set(cidx)) == len(cidx):
        conns = [t for _, t in sorted(zip(cidx, conns, strict=True), key=lambda t: t[0])]
    else:
        conns.sort(key=lambda t: t[2])

    # -- the axonal delay: one value for every connection, or no Delay nodes at all
    values: list[float | None] = []
    for _, dkey, _ in conns:
        if dkey is None:
            values.append(None)
            continue
        d = np.asarray(nodes[dkey].delay, dtype=np.float64)
        if d.size == 0 or np.ptp(d) != 0 or not np.isfinite(d).all() or d.flat[0] < 0:
            raise fail(f"{dkey}: delays must be one finite non-negative value for all neurons")
        values.append(float(d.flat[0]))
    if all(v is None for v in values):
        delay = None
    elif any(v is None for v in values) or len(set(values)) != 1:
        shown = ", ".join(
            f"{c.name}: {'none' if v is None else f'{v:g} s'}" for (c, _, _), v in zip(conns, values, strict=True)
        )
        raise fail(f"connections have different axonal delays ({shown}); the model has one delay for all")
    else:
        delay = values[0]
    meta = {str(k): v for k, v in dict(getattr(graph, "metadata", None) or {}).items()}
    return NirNetwork(groups, [c for c, _, _ in conns], delay, meta)


def _lif_group(key: str, lif: Any, name: str, meta: dict[str, Any], fail: Any) -> NirGroup:
    """A CubaLIF node as a LIF group: one value per constant, v_reset = v_leak."""
    post = int(np.asarray(lif.v_threshold).size)
    if post < 1:
        raise fail(f"{key}: a CubaLIF needs at least one neuron")
    params = {}
    for pname in ("tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "v_reset", "w_in"):
        raw = np.asarray(getattr(lif, pname), dtype=np.float64).ravel()
        if raw.size not in (1, post):
            raise fail(f"{key}: {pname} has {raw.size} values for {post} neurons")
        if not np.isfinite(raw).all():
            raise fail(f"{key}: {pname} holds NaN or infinite values")
        params[pname] = np.resize(raw, post)
    constants = {}
    for pname, ckey in (("tau_mem", "tau_mem"), ("tau_syn", "tau_syn"), ("v_leak", "u_rest"),
                        ("v_threshold", "threshold")):  # fmt: skip
        v = params[pname]
        if np.ptp(v) != 0:
            raise fail(f"{key}: {pname} differs between neurons; the model has one value per group")
        constants[ckey] = float(v[0])
    if np.any(params["v_reset"] != params["v_leak"]):
        raise fail(f"{key}: v_reset differs from v_leak; the model resets to the resting potential")
    for pname in ("tau_syn", "tau_mem"):
        if params[pname][0] <= 0:
            raise fail(f"{key}: {pname} must be positive, got {params[pname][0]}")
    refractory = meta.get("refractory")
    own = _plain(meta.get("own_constants"))
    return NirGroup(
        name,
        key,
        "lif",
        post,
        constants=constants,
        refractory=_number(refractory),
        own_constants=own if isinstance(own, bool) else None,
        scale=params["r"] * params["w_in"] / params["tau_syn"],
    )


def _group_name(name: str) -> str:
    """A node's name as a group name (letters, digits, _ and .; not starting with a digit)."""
    if _GROUP_NAME.match(name):
        return name
    clean = re.sub(r"[^A-Za-z0-9_.]", "_", name)
    return clean if _GROUP_NAME.match(clean) else f"g{clean}"


def _connection_name(name: str) -> str:
    """A node's name as a connection name (letters, digits, _ - and .)."""
    clean = re.sub(r"[^A-Za-z0-9_.\-]", "_", name)
    return clean if _GROUP_NAME.match(clean.replace("-", "_")) else f"c{clean}"


def _chain(groups: list[tuple[str, str]], pairs: list[tuple[str, str]]) -> list[str] | None:
    """Group names in path order if the connections (pre, post) other than self connections form
    one path from the only input group through every group, else None."""
    pairs = [(a, b) for a, b in pairs if a != b]
    inputs = [n for n, kind in groups if kind == "input"]
    if len(inputs) != 1 or len(pairs) != len(groups) - 1:
        return None
    path = inputs
    while len(path) < len(groups):
        nxt = [b for a, b in pairs if a == path[-1]]
        if len(nxt) != 1 or nxt[0] in path:
            return None
        path = [*path, nxt[0]]
    return path


def _spec_chain(spec: NetworkSpec) -> list[str] | None:
    return _chain([(g.name, g.kind) for g in spec.groups], [(c.pre, c.post) for c in spec.connections])


def _shape_size(shape: Any, what: str, fail: Any) -> int:
    arr = np.asarray(shape, dtype=object).ravel()
    try:
        n = int(arr[0]) if arr.size == 1 else 0
    except (TypeError, ValueError):
        n = 0
    if n < 1:
        raise fail(f"{what} shape must be one positive number of neurons, got {arr.tolist()}")
    return n


def _steps(seconds: float, dt: float) -> int:
    """Seconds to whole steps, tolerant of float noise in exported values (0.0008/0.0001 -> 8)."""
    x = seconds / dt
    return round(x) if abs(x - round(x)) < 1e-6 else math.floor(x)


def _seconds(n: int, dt: float) -> float:
    """The smallest float near n * dt that :func:`superspike.params.steps` turns back into n."""
    t = n * dt
    while math.floor(t / dt) < n:
        t = math.nextafter(t, math.inf)
    return t


def _number(value: Any) -> float | None:
    value = _plain(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def _describe(spec: NetworkSpec) -> str:
    return " ".join(f"{g.name}({g.n})" for g in spec.groups)


def network_from_nir(
    path: str | Path, spec: NetworkSpec | None = None, drawn: Network | None = None, *, seed: int = 0
) -> tuple[Network, list[str]]:
    """The network of a NIR file, and notes for the user.

    With ``spec`` (a run's configuration) the graph must match it: the same groups (by name, or,
    if both are chains, by position: chains exported before groups had names, and foreign
    chains), the same connections (by name, else by their pre and post groups), each LIF group's
    constants (tau_mem, tau_syn, resting potential, threshold) and the axonal delay; a mismatch is
    a one-line error that says what to configure. dt and refractory periods come from ``spec``
    (NIR cannot state them); a graph whose metadata records other values gets a note.

    Without ``spec``, the graph's own network is rebuilt: groups, connections, plastic flags,
    per-group constants, feedback mode and the rule's constants from the graph's metadata
    (defaults where a foreign graph has none, with a note).

    Fixed feedback matrices come from the graph's metadata when it was exported with the same
    feedback mode, else from ``drawn`` (the network drawn from the run's seed), else they are
    drawn from ``seed``.
    """
    limit = MAX_NIR_BYTES
    if spec is not None:  # the graph's arrays (float64, 3 per connection at most) and some room
        limit = min(
            limit, 24 * (sum(a * b for a, b in spec.shapes.values()) + sum(g.n for g in spec.groups)) + (64 << 20)
        )
    graph = read_nir(path, limit)
    got = parse_graph(graph, path)
    notes: list[str] = []
    if spec is None:
        spec = _spec_from_graph(got, path, notes)
        gmap = {g.name: g.name for g in got.groups}
        cmap = {c.name: c for c in got.connections}
    else:
        gmap, cmap = _match(got, spec, path, notes)
        _check_constants(got, spec, gmap, path, notes)
    weights = {name: c.weight for name, c in cmap.items()}
    feedback = _feedback_matrices(got, spec, gmap, cmap, drawn, seed, path, notes)
    wmax = spec.rule.w_max
    big = sum(int((np.abs(w) > wmax).sum()) for w in weights.values())
    if big:
        notes.append(f"{path}: {big} weights exceed +-{wmax:g} V; weight updates clip them to that range")
    return Network(spec, weights, feedback), notes


def _spec_from_graph(got: NirNetwork, path: str | Path, notes: list[str]) -> NetworkSpec:
    """The NetworkSpec a graph describes (see :func:`network_from_nir`)."""
    meta = got.metadata
    lifs = [g for g in got.groups if g.kind == "lif"]
    try:
        stored = meta.get("neuron")
        if isinstance(stored, dict):
            p = params_from_dict(NeuronParams, {k: _plain(v) for k, v in stored.items()}, "neuron")
        else:  # a foreign graph, or a chain exported before the format had a version
            first = lifs[0]
            defaults = NeuronParams()
            dt = _number(meta.get("dt")) or defaults.dt
            refractory = first.refractory if first.refractory is not None else _number(meta.get("refractory"))
            if refractory is None:
                refractory = defaults.refractory
                notes.append(
                    f"{path}: NIR's CubaLIF has no refractory period; using superspike's default {refractory:g} s"
                )
            if got.delay is None:
                delay = _number(meta.get("axonal_delay")) or defaults.axonal_delay
                notes.append(
                    f"{path}: the graph has no Delay nodes; using the axonal delay {delay:g} s "
                    "(this simulator needs at least one step)"
                )
            else:
                delay = got.delay
            p = NeuronParams(
                dt=dt, refractory=refractory, axonal_delay=_seconds(_steps(delay, dt), dt), **first.constants
            )
        if got.delay is not None and _steps(got.delay, p.dt) != p.delay_steps:
            notes.append(
                f"{path}: the Delay nodes say {got.delay:g} s, the metadata {p.axonal_delay:g} s; using the nodes'"
            )
            p = replace(p, axonal_delay=_seconds(_steps(got.delay, p.dt), p.dt))
        groups = []
        for g in got.groups:
            if g.kind == "input":
                groups.append(Group(g.name, g.n, "input"))
                continue
            refractory = g.refractory if g.refractory is not None else p.refractory
            own = replace(p, refractory=refractory, **g.constants)
            differs = own != p
            use_own = differs if g.own_constants is None else (g.own_constants or differs)
            groups.append(Group(g.name, g.n, "lif", g.target, own if use_own else None))
        connections = [
            Connection(c.name, c.pre, c.post, plastic=True if c.plastic is None else c.plastic, w0=c.w0)
            for c in got.connections
        ]
        rule = meta.get("rule")
        reg = meta.get("regularizer")
        return NetworkSpec(
            tuple(groups),
            tuple(connections),
            feedback=str(_plain(meta.get("feedback", "symmetric"))),
            feedback_delay=_number(meta.get("feedback_delay")) or 0.0,
            regularizer=RegularizerParams(**{k: float(_plain(v)) for k, v in reg.items()})
            if isinstance(reg, dict)
            else None,
            linear=bool(_plain(meta.get("linear", False))),
            neuron=p,
            rule=params_from_dict(RuleParams, {k: _plain(v) for k, v in rule.items()}, "rule")
            if isinstance(rule, dict)
            else RuleParams(),
        )
    except (ConfigError, TypeError, ValueError) as exc:
        raise InputFileError(path, f"does not describe a network superspike can simulate ({exc})") from None


def _match(
    got: NirNetwork, spec: NetworkSpec, path: str | Path, notes: list[str]
) -> tuple[dict[str, str], dict[str, NirConnection]]:
    """Map the graph's groups onto the run's (graph name -> run name) and the run's connections
    onto the graph's (run name -> graph connection); mismatches are one-line errors."""
    gnames, snames = [g.name for g in got.groups], [g.name for g in spec.groups]
    gchain, schain = got.chain(), _spec_chain(spec)
    if gchain is not None and schain is not None:
        gsizes = [got.group(n).n for n in gchain]
        ssizes = [spec.group(n).n for n in schain]
        if gsizes != ssizes:
            hidden = " ".join(f"--hidden {h}" for h in gsizes[1:-1]) or "no --hidden (hidden = [] in TOML)"
            raise InputFileError(
                path,
                f"the graph has layers {'-'.join(map(str, gsizes))}, the run {'-'.join(map(str, ssizes))} "
                f"(nin-hidden-nout); the task must match its input and output and the run needs {hidden}",
            )
    if sorted(gnames) == sorted(snames):
        gmap = {n: n for n in gnames}
    elif gchain is not None and schain is not None:
        gmap = dict(zip(gchain, schain, strict=True))
    else:
        raise InputFileError(
            path,
            f"the graph's groups {got.describe()} are not the run's {_describe(spec)}; "
            "describe the graph in the run's [network] table (group and connection names as in the graph)",
        )
    for g in got.groups:
        mine = spec.group(gmap[g.name])
        if g.kind != mine.kind:
            raise InputFileError(path, f"group {g.name!r} is {g.kind} in the graph, {mine.kind} in the run")
        if g.n != mine.n:
            raise InputFileError(path, f"group {g.name!r} has {g.n} neurons in the graph, {mine.n} in the run")
        if g.kind == "lif" and g.target != mine.target:
            notes.append(
                f"{path}: group {g.name!r} {'feeds' if g.target else 'does not feed'} an Output node in the graph, "
                f"but is {'an output' if mine.target else 'a hidden'} group in the run"
            )
    pair = {c.name: (gmap[c.pre], gmap[c.post]) for c in got.connections}
    cmap: dict[str, NirConnection] = {}
    by_name = {c.name: c for c in got.connections}
    if sorted(by_name) == sorted(c.name for c in spec.connections) and all(
        pair[c.name] == (c.pre, c.post) for c in spec.connections
    ):
        cmap = {c.name: by_name[c.name] for c in spec.connections}
    else:
        for c in spec.connections:
            if c.name in cmap:
                continue
            same = [d for d in spec.connections if (d.pre, d.post) == (c.pre, c.post)]
            cand = [d for d in got.connections if pair[d.name] == (c.pre, c.post)]
            if not cand:
                raise InputFileError(path, f"the run's connection {c.name!r} ({c.pre} -> {c.post}) is not in the graph")
            if len(cand) != len(same):
                raise InputFileError(
                    path,
                    f"the graph has {len(cand)} connections {c.pre} -> {c.post}, the run {len(same)}",
                )
            cmap.update({d.name: e for d, e in zip(same, cand, strict=True)})
    extra = [c for c in got.connections if all(c is not e for e in cmap.values())]
    if extra:
        c = extra[0]
        pre, post = pair[c.name]
        how = "; add it to the run's [network] table" + (" (or pass --recurrent)" if pre == post else "")
        raise InputFileError(path, f"the graph has a connection {c.name!r} ({pre} -> {post}) that the run lacks{how}")
    return gmap, cmap


def _check_constants(
    got: NirNetwork, spec: NetworkSpec, gmap: dict[str, str], path: str | Path, notes: list[str]
) -> None:
    """The graph's neuron constants and axonal delay against the run's (errors), its recorded dt
    and refractory periods (notes)."""
    p = spec.neuron
    diffs: dict[str, list[tuple[str, float, float]]] = {}
    refractory_unknown = False
    graph_refractory = _number(got.metadata.get("refractory"))
    for g in got.groups:
        if g.kind != "lif":
            continue
        mine = spec.group(gmap[g.name])
        q = spec.neuron_of(mine)
        for key in _CONSTANTS:
            value, want = g.constants[key], getattr(q, key)
            if not math.isclose(value, want, rel_tol=1e-6, abs_tol=1e-12):
                diffs.setdefault(mine.name, []).append((key, value, want))
        theirs = g.refractory if g.refractory is not None else graph_refractory
        if theirs is None:
            refractory_unknown = True
        elif not math.isclose(theirs, q.refractory, rel_tol=1e-9, abs_tol=1e-15):
            notes.append(
                f"{path}: group {mine.name} was exported with refractory = {theirs:g} s; "
                f"this run uses {q.refractory:g} s"
            )
    if refractory_unknown:
        notes.append(
            f"{path}: NIR's CubaLIF has no refractory period; this run uses refractory = {p.refractory:g} s "
            "(set [neuron] refractory = 0 in a --config file to follow the graph's equations)"
        )
    delay: list[tuple[str, float, float]] = []
    if got.delay is None:
        notes.append(
            f"{path}: the graph has no Delay nodes; using the configured axonal delay {p.delay_steps * p.dt:g} s "
            "(this simulator needs at least one step)"
        )
    elif _steps(got.delay, p.dt) != p.delay_steps:
        delay = [("axonal_delay", got.delay, p.delay_steps * p.dt)]
    theirs_dt = _number(got.metadata.get("dt"))
    if theirs_dt is not None and not math.isclose(theirs_dt, p.dt, rel_tol=1e-9, abs_tol=1e-15):
        notes.append(f"{path}: the graph was exported with dt = {theirs_dt:g} s; this run uses {p.dt:g} s")
    if not diffs and not delay:
        return
    lif = spec.lif_groups
    same = [diffs.get(g.name) for g in lif]
    if all(d == same[0] for d in same) and all(g.neuron is None for g in lif):
        entries = (same[0] or []) + delay
        shown = ", ".join(f"{k} = {v:g} (configured {m:g})" for k, v, m in entries)
        table = ", ".join(f"{k} = {v:g}" for k, v, _ in entries)
        raise InputFileError(
            path,
            f"the graph's neuron constants differ from the run's: {shown}; "
            f"to train this graph, set them in the [neuron] table of a --config file: {table}",
        )
    parts = [f"{g}: " + ", ".join(f"{k} = {v:g} (configured {m:g})" for k, v, m in d) for g, d in diffs.items()]
    parts += [f"{k} = {v:g} (configured {m:g})" for k, v, m in delay]
    raise InputFileError(
        path,
        f"the graph's neuron constants differ from the run's: {'; '.join(parts)}; to train this graph, give "
        "each of these groups its own constants (the neuron table of its [[network.group]] in a --config file"
        + ("; the axonal delay in [neuron])" if delay else ")"),
    )


def _feedback_matrices(
    got: NirNetwork,
    spec: NetworkSpec,
    gmap: dict[str, str],
    cmap: dict[str, NirConnection],
    drawn: Network | None,
    seed: int,
    path: str | Path,
    notes: list[str],
) -> dict[str, np.ndarray]:
    """The fixed feedback matrices: the graph's, where it was exported with the run's feedback
    mode, else drawn (``drawn``'s, or from ``seed``)."""
    shapes = spec.feedback_shapes
    if not shapes:
        return {}
    meta = got.metadata
    same_mode = str(_plain(meta.get("feedback", ""))) == spec.feedback
    stored = meta.get("feedback_matrices")
    stored = stored if isinstance(stored, dict) else {}
    inv = {v: k for k, v in gmap.items()}
    order = [c.name for c in got.connections]
    out: dict[str, np.ndarray] = {}
    missing = []
    for e in spec.feedback_edges:
        if e.via is not None:
            continue
        if spec.feedback == "direct":
            theirs = f"{inv[e.src]}-{inv[e.dst]}"
            b = stored.get(theirs)
        else:  # random, uniform: one matrix per connection, named like it
            theirs = cmap[e.name].name
            b = stored.get(theirs)
            if b is None and not stored:  # chains exported before groups had names: b<c>
                b = meta.get(f"b{order.index(theirs)}")
        if same_mode and isinstance(b, np.ndarray) and b.shape == shapes[e.name] and np.isfinite(b).all():
            out[e.name] = np.asarray(b, dtype=np.float32)
        else:
            missing.append(e.name)
    if missing:
        source = drawn if drawn is not None else Network.initialize(spec, seed)
        how = "from the run's seed" if drawn is not None else f"from seed {seed}"
        for name in missing:
            out[name] = source.feedback[name]
        notes.append(f"{path}: no {spec.feedback} feedback matrix {', '.join(missing)} in the graph; drawn {how}")
    return out
