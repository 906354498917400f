"""Networks to and from NIR, the Neuromorphic Intermediate Representation (the ``nir`` package,
read by snnTorch, Norse, Lava, Rockpool, SpiNNaker2 and others). Needs the ``nir`` extra.

The graph of a network with layers input, hidden0, ..., output is::

    Input -> Delay -> Affine -> CubaLIF (hidden0) -> Delay -> Affine -> ... -> CubaLIF (output) -> Output

How SPEC 1 maps onto NIR's equations (continuous time, SI units, spikes are Dirac pulses of unit
area, as NIR's authors settled)::

    NIR CubaLIF:  tau_syn dI/dt = -I + w_in * (W s(t - d))      tau_mem dv/dt = (v_leak - v) + r I
    SPEC 1:       dI_syn/dt = -I_syn/tau_syn + sum_j w_ij S_j(t - d)
                  tau_mem dU/dt = (U_rest - U) + I_syn

A spike through NIR's synapse makes I jump by ``w_in * W / tau_syn``, so with ``I = I_syn`` (volts),
``r = 1``, ``W = w^T`` (volts; NIR's weight layout is [post, pre], ours [pre, post]) and
``w_in = tau_syn`` (s) the two are the same equations: every spike adds w_ij to I_syn. ``v_leak`` and
``v_reset`` are U_rest, ``v_threshold`` the threshold (the test is strict, U > threshold, as NIR
writes it). The axonal delay d is a ``Delay`` node in front of each Affine (input spikes are
delayed too, SPEC 1). What NIR cannot express is in the graph's metadata: the time step ``dt``,
the refractory period (NIR's CubaLIF has none), the discrete update order, the feedback mode and
matrices, and the source.

Import (:func:`network_from_nir`) accepts any graph of that shape: Affine or Linear nodes, Delay
nodes optional (before or after each Affine), per-neuron ``r`` and ``w_in`` (they are folded into
the weights: jump = r * w_in * W / tau_syn); the other constants must be the same for every neuron
and layer, and match the run's configuration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from superspike.errors import InputFileError, UserError
from superspike.network import Network, NetworkSpec
from superspike.params import NeuronParams

EXTRA_MESSAGE = "needs the nir extra: pip install 'superspike[nir]'"

#: the discrete update the exported numbers belong to (SPEC 1), stored in the graph's metadata
DISCRETIZATION = (
    "per time step dt, each group: U += dt/tau_mem*((v_leak - U) + r*I); "
    "if not refractory and U > v_threshold: spike, U = v_reset, refractory for `refractory` s "
    "(U held at v_reset); I *= exp(-dt/tau_syn); then spikes emitted delay/dt steps earlier are "
    "delivered: I += r*w_in*W/tau_syn (= W, in V) per spike"
)


def import_nir(what: str = "NIR export and import") -> ModuleType:
    """The ``nir`` module, or a one-line UserError naming the extra to install."""
    try:
        import nir
    except ImportError:
        raise UserError(f"{what} {EXTRA_MESSAGE}") from None
    return nir


# ---------------------------------------------------------------------------------------------
# export


def network_to_nir(network: Network, metadata: dict[str, Any] | None = None) -> Any:
    """The network as a ``nir.NIRGraph`` (SI units; see the module docstring for the mapping).

    ``metadata`` is added to the graph's own metadata (dt, refractory period, feedback, ...).
    """
    nir = import_nir()
    spec = network.spec
    p = spec.neuron
    sizes = spec.sizes
    names = group_names(len(spec.hidden))
    delay = p.delay_steps * p.dt  # the delay the simulation applies, s
    nodes: dict[str, Any] = {"input": nir.Input(input_type={"input": np.array([sizes[0]])})}
    edges: list[tuple[str, str]] = []
    prev = "input"
    for c in range(spec.n_connections):
        pre, post = sizes[c], sizes[c + 1]
        nodes[f"delay{c}"] = nir.Delay(
            delay=np.full(pre, delay), metadata={"note": f"axonal delay of the spikes of {names[c]}, s"}
        )
        nodes[f"affine{c}"] = nir.Affine(
            weight=np.ascontiguousarray(network.weights[c].T, dtype=np.float32),
            bias=np.zeros(post, dtype=np.float32),
            metadata={"note": f"w{c} of superspike, transposed to NIR's [post, pre]; V"},
        )
        nodes[f"lif{c}"] = nir.CubaLIF(
            tau_syn=np.full(post, p.tau_syn),
            tau_mem=np.full(post, p.tau_mem),
            r=np.ones(post),
            v_leak=np.full(post, p.u_rest),
            v_threshold=np.full(post, p.threshold),
            v_reset=np.full(post, p.u_rest),
            w_in=np.full(post, p.tau_syn),
            metadata={"group": names[c + 1], "refractory": p.refractory},
        )
        edges += [(prev, f"delay{c}"), (f"delay{c}", f"affine{c}"), (f"affine{c}", f"lif{c}")]
        prev = f"lif{c}"
    nodes["output"] = nir.Output(output_type={"output": np.array([sizes[-1]])})
    edges.append((prev, "output"))
    meta: dict[str, Any] = {
        "source": f"superspike {_version()}",
        "model": "SuperSpike (Zenke & Ganguli 2018): current-based LIF network",
        "units": "SI: times s, potentials V, weights V; spikes are Dirac pulses of unit area",
        "groups": ", ".join(names),
        "dt": p.dt,
        "refractory": p.refractory,
        "refractory_note": "absolute refractory period after each spike, U held at v_reset; "
        "NIR's CubaLIF has no refractory period, so it is stated here only",
        "axonal_delay": delay,
        "weight_convention": "a spike adds r*w_in*W/tau_syn to the CubaLIF current I (w_in = tau_syn, r = 1: "
        "the Affine weight W is the jump of the synaptic current in V, which enters the membrane directly)",
        "discretization": DISCRETIZATION,
        "feedback": spec.feedback,
        "feedback_delay": spec.feedback_delay,
    }
    for c, b in network.feedback.items():
        meta[f"b{c}"] = np.asarray(b, dtype=np.float32)
        meta[f"b{c}_note"] = f"fixed feedback matrix carrying the error of {names[c + 1]} to {names[c]}, [upper, lower]"
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


def export_run(run_dir: str | Path, out: str | Path) -> Path:
    """Write the final network of a run directory (config.toml + weights.npz) as a NIR file."""
    from dataclasses import replace

    from superspike.run.config import load_config
    from superspike.run.train import build_network

    import_nir()
    run_dir = Path(run_dir)
    config = run_dir / "config.toml"
    weights = run_dir / "weights.npz"
    if not run_dir.is_dir():
        raise InputFileError(run_dir, "no such run directory")
    if not config.exists():
        raise InputFileError(run_dir, "not a run directory (no config.toml)")
    if not weights.exists():
        raise InputFileError(run_dir, "has no weights.npz (did the run finish?)")
    cfg = load_config(config)
    if cfg.nin is None or cfg.nout is None or cfg.hidden is None:
        raise InputFileError(config, "lacks nin, nout or hidden; not the config.toml of a run")
    network, _ = build_network(replace(cfg, init_weights=str(weights), init_from=None))
    meta = {
        "run_dir": str(run_dir.resolve()),
        "task": cfg.task or str(cfg.target),
        "config_toml": config.read_text(),
    }
    return write_nir(network, out, meta)


def group_names(n_hidden: int) -> list[str]:
    """input, hidden0, ..., output (as in the run directory)."""
    return ["input", *(f"hidden{k}" for k in range(n_hidden)), "output"]


def _version() -> str:
    from superspike import __version__

    return __version__


# ---------------------------------------------------------------------------------------------
# import


@dataclass
class NirLayers:
    """What a NIR graph of the expected shape says, in superspike's terms."""

    sizes: tuple[int, ...]  #: input, hidden..., output
    weights: list[np.ndarray]  #: [pre, post], V: the jump of I_syn per spike
    tau_mem: float
    tau_syn: float
    u_rest: float
    threshold: float
    delay: float | None  #: axonal delay, s (None: the graph has no Delay nodes)
    metadata: dict[str, Any] = field(default_factory=dict)


def read_nir(path: str | Path) -> Any:
    """Read a NIR file with ``nir.read``; a missing or unreadable file is a one-line error."""
    nir = import_nir()
    path = Path(path)
    if not path.exists():
        raise InputFileError(path, "no such file")
    if path.is_dir():
        raise InputFileError(path, "is a directory, not a NIR file")
    try:
        return nir.read(path)
    except Exception as exc:  # h5py and nir raise OSError, KeyError, ValueError, AssertionError...
        problem = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputFileError(path, f"not a readable NIR graph ({problem})") from None


def parse_graph(graph: Any, source: str | Path = "<graph>") -> NirLayers:
    """Check that ``graph`` is Input -> [Delay] Affine [Delay] -> CubaLIF -> ... -> CubaLIF -> Output
    and extract layer sizes, weights and constants. Problems are one-line InputFileErrors."""
    nir = import_nir()

    def fail(problem: str) -> InputFileError:
        return InputFileError(source, problem)

    nodes = dict(graph.nodes)
    succ: dict[str, list[str]] = {k: [] for k in nodes}
    pred: dict[str, list[str]] = {k: [] for k in nodes}
    for edge in graph.edges:
        a, b = (str(e) for e in edge)
        for end in (a, b):
            if end not in nodes:
                raise fail(f"edge ({a!r}, {b!r}) names an unknown node {end!r}")
        succ[a].append(b)
        pred[b].append(a)
    inputs = [k for k, n in nodes.items() if isinstance(n, nir.Input)]
    outputs = [k for k, n in nodes.items() if isinstance(n, nir.Output)]
    if len(inputs) != 1 or len(outputs) != 1:
        raise fail(f"expected one Input and one Output node, found {len(inputs)} and {len(outputs)}")
    chain = [inputs[0]]
    while not isinstance(nodes[chain[-1]], nir.Output):
        k = chain[-1]
        if len(succ[k]) != 1:
            raise fail(f"node {k!r} feeds {len(succ[k])} nodes; expected a chain Input -> ... -> Output")
        nxt = succ[k][0]
        if len(pred[nxt]) != 1:
            raise fail(f"node {nxt!r} has {len(pred[nxt])} inputs; expected a feed-forward chain without recurrence")
        if nxt in chain:
            raise fail(f"the graph has a cycle through node {nxt!r}")
        chain.append(nxt)
    if len(chain) != len(nodes):
        extra = sorted(set(nodes) - set(chain))
        raise fail(f"nodes not on the path from Input to Output: {', '.join(extra)}")

    # group the chain into layers: [Delay] (Affine|Linear) [Delay] CubaLIF
    layers: list[dict[str, Any]] = []
    cur: dict[str, Any] = {}
    for k in chain[1:-1]:
        n = nodes[k]
        if isinstance(n, nir.Delay):
            if "delay" in cur:
                raise fail(f"two Delay nodes in one layer (at {k!r})")
            cur["delay"] = (k, n)
        elif isinstance(n, (nir.Affine, nir.Linear)):
            if "affine" in cur:
                raise fail(f"two weight nodes in a row (at {k!r}); expected Affine -> CubaLIF")
            cur["affine"] = (k, n)
        elif isinstance(n, nir.CubaLIF):
            if "affine" not in cur:
                raise fail(f"CubaLIF node {k!r} has no Affine node in front of it")
            cur["lif"] = (k, n)
            layers.append(cur)
            cur = {}
        else:
            raise fail(f"node {k!r} is a {type(n).__name__}; supported: Input, Delay, Affine, Linear, CubaLIF, Output")
    if cur:
        raise fail(f"the graph ends with {', '.join(v[0] for v in cur.values())} instead of a CubaLIF before Output")
    if not layers:
        raise fail("the graph has no CubaLIF layer")

    nin = _shape_size(nodes[chain[0]].input_type.get("input"), "Input", fail)
    sizes = [nin]
    weights: list[np.ndarray] = []
    consts: dict[str, float] = {}
    delays: list[float | None] = []
    for layer in layers:
        akey, aff = layer["affine"]
        lkey, lif = layer["lif"]
        W = np.asarray(aff.weight, dtype=np.float64)
        if W.ndim != 2:
            raise fail(f"{akey}: weight must be a matrix [post, pre], has shape {W.shape}")
        post, pre = W.shape
        if pre != sizes[-1]:
            raise fail(f"{akey}: weight has {pre} inputs, the layer before has {sizes[-1]} neurons")
        if isinstance(aff, nir.Affine) and aff.bias is not None and np.any(np.asarray(aff.bias) != 0):
            raise fail(f"{akey}: non-zero bias; the model has no bias current")
        if not np.isfinite(W).all():
            raise fail(f"{akey}: weight holds NaN or infinite values")
        params = {}
        for name in ("tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "v_reset", "w_in"):
            raw = np.asarray(getattr(lif, name), dtype=np.float64).ravel()
            if raw.size not in (1, post):
                raise fail(f"{lkey}: {name} has {raw.size} values for {post} neurons")
            if not np.isfinite(raw).all():
                raise fail(f"{lkey}: {name} holds NaN or infinite values")
            params[name] = np.resize(raw, post)
        for name, key in (("tau_syn", "tau_syn"), ("tau_mem", "tau_mem"), ("v_leak", "u_rest"),
                          ("v_threshold", "threshold")):  # fmt: skip
            v = params[name]
            if np.ptp(v) != 0:
                raise fail(f"{lkey}: {name} differs between neurons; the model has one value for all")
            val = float(v[0])
            if key in consts and consts[key] != val:
                raise fail(f"{lkey}: {name} = {val} differs from {consts[key]} of an earlier layer")
            consts[key] = val
        if np.any(params["v_reset"] != params["v_leak"]):
            raise fail(f"{lkey}: v_reset differs from v_leak; the model resets to the resting potential (SPEC 1)")
        for name in ("tau_syn", "tau_mem"):
            if params[name][0] <= 0:
                raise fail(f"{lkey}: {name} must be positive, got {params[name][0]}")
        # fold r and w_in into the weights: a spike makes r*I jump by r*w_in*W/tau_syn
        scale = params["r"] * params["w_in"] / params["tau_syn"]
        weights.append(np.ascontiguousarray((W * scale[:, None]).T, dtype=np.float32))
        if "delay" in layer:
            dkey, dn = layer["delay"]
            d = np.asarray(dn.delay, dtype=np.float64)
            if d.size == 0 or np.ptp(d) != 0 or not np.isfinite(d).all() or d.flat[0] < 0:
                raise fail(f"{dkey}: delays must be one finite non-negative value for all neurons")
            delays.append(float(d.flat[0]))
        else:
            delays.append(None)
        sizes.append(post)
    nout = _shape_size(nodes[chain[-1]].output_type.get("output"), "Output", fail)
    if nout != sizes[-1]:
        raise fail(f"Output has {nout} neurons, the last CubaLIF has {sizes[-1]}")
    if all(d is None for d in delays):
        delay = None
    elif any(d is None for d in delays) or len(set(delays)) != 1:
        shown = ", ".join("none" if d is None else f"{d:g} s" for d in delays)
        raise fail(f"layers have different axonal delays ({shown}); the model has one delay for all")
    else:
        delay = delays[0]
    return NirLayers(
        tuple(sizes),
        weights,
        consts["tau_mem"],
        consts["tau_syn"],
        consts["u_rest"],
        consts["threshold"],
        delay,
        dict(getattr(graph, "metadata", None) or {}),
    )


def _shape_size(shape: Any, what: str, fail: Any) -> int:
    arr = np.asarray(shape).ravel()
    if arr.size != 1 or int(arr[0]) < 1:
        raise fail(f"{what} shape must be one positive number of neurons, got {arr.tolist()}")
    return int(arr[0])


def _steps(seconds: float, dt: float) -> int:
    """Seconds to whole steps, tolerant of float noise in exported values (0.0008/0.0001 -> 8)."""
    x = seconds / dt
    return round(x) if abs(x - round(x)) < 1e-6 else math.floor(x)


def network_from_nir(path: str | Path, spec: NetworkSpec, drawn: Network | None = None) -> tuple[Network, list[str]]:
    """The network of a NIR file, checked against ``spec`` (the run's configuration).

    Layer sizes and the neuron constants the graph defines (tau_mem, tau_syn, resting potential
    and threshold, axonal delay) must match ``spec``; a mismatch is a one-line error that says
    what to configure. dt and the refractory period come from the configuration (NIR cannot state
    them); a graph whose metadata records other values gets a note. Feedback matrices come from
    the graph's metadata when it was exported with the same feedback mode, else from ``drawn``
    (the network drawn from the run's seed). Returns the network and notes for the user.
    """
    graph = read_nir(path)
    got = parse_graph(graph, path)
    notes: list[str] = []
    p: NeuronParams = spec.neuron
    if got.sizes != spec.sizes:
        g_hidden = " ".join(f"--hidden {h}" for h in got.sizes[1:-1]) or "no --hidden (hidden = [] in TOML)"
        raise InputFileError(
            path,
            f"the graph has layers {'-'.join(map(str, got.sizes))}, the run {'-'.join(map(str, spec.sizes))} "
            f"(nin-hidden-nout); the task must match its input and output and the run needs {g_hidden}",
        )
    diffs = []
    for key, value in (("tau_mem", got.tau_mem), ("tau_syn", got.tau_syn), ("u_rest", got.u_rest),
                       ("threshold", got.threshold)):  # fmt: skip
        mine = getattr(p, key)
        if not math.isclose(value, mine, rel_tol=1e-6, abs_tol=1e-12):
            diffs.append((key, value, mine))
    if got.delay is None:
        notes.append(
            f"{path}: the graph has no Delay nodes; using the configured axonal delay {p.delay_steps * p.dt:g} s "
            "(this simulator needs at least one step)"
        )
    elif _steps(got.delay, p.dt) != p.delay_steps:
        diffs.append(("axonal_delay", got.delay, p.delay_steps * p.dt))
    if diffs:
        shown = ", ".join(f"{k} = {v:g} (configured {m:g})" for k, v, m in diffs)
        table = ", ".join(f"{k} = {v:g}" for k, v, _ in diffs)
        raise InputFileError(
            path,
            f"the graph's neuron constants differ from the run's: {shown}; "
            f"to train this graph, set them in the [neuron] table of a --config file: {table}",
        )
    meta = got.metadata
    for key, mine in (("dt", p.dt), ("refractory", p.refractory)):
        if key in meta:
            try:
                theirs = float(meta[key])
            except (TypeError, ValueError):
                continue
            if not math.isclose(theirs, mine, rel_tol=1e-9, abs_tol=1e-15):
                notes.append(f"{path}: the graph was exported with {key} = {theirs:g} s; this run uses {mine:g} s")
        elif key == "refractory":
            notes.append(
                f"{path}: NIR's CubaLIF has no refractory period; this run uses refractory = {mine:g} s "
                "(set [neuron] refractory = 0 in a --config file to follow the graph's equations)"
            )
    wmax = spec.rule.w_max
    big = sum(int((np.abs(w) > wmax).sum()) for w in got.weights)
    if big:
        notes.append(f"{path}: {big} weights exceed +-{wmax:g} V; weight updates clip them to that range")
    feedback: dict[int, np.ndarray] = {}
    same_mode = str(meta.get("feedback", "")) == spec.feedback
    for c, shape in spec.feedback_shapes.items():
        b = meta.get(f"b{c}")
        if same_mode and isinstance(b, np.ndarray) and b.shape == shape and np.isfinite(b).all():
            feedback[c] = np.asarray(b, dtype=np.float32)
        elif drawn is not None:
            feedback[c] = drawn.feedback[c]
            notes.append(f"{path}: no {spec.feedback} feedback matrix b{c} in the graph; drawn from the run's seed")
        else:
            raise InputFileError(path, f"no {spec.feedback} feedback matrix b{c} in the graph's metadata")
    return Network(spec, got.weights, feedback), notes
