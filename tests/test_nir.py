"""NIR export and import of networks as graphs: the file is what NIR defines (node types, SI
parameters, Dirac-spike synapse convention), every group is a node and every connection a weight
node between its groups (a recurrent connection an ordinary edge), a round trip rebuilds the same
spec, weights and feedback matrices and reproduces the original network's spikes exactly, chains
exported before groups had names and foreign graphs import (r and w_in folded into the weights),
and bad graphs are one-line errors."""

from __future__ import annotations

import ast
import math
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import small_task

from superspike.cli import main
from superspike.errors import InputFileError, UserError
from superspike.io import write_ras
from superspike.network import Connection, Group, Network, NetworkSpec
from superspike.params import NeuronParams, RegularizerParams, RuleParams

P = NeuronParams()


@pytest.fixture
def nir():
    return pytest.importorskip("nir")


def _net(spec: NetworkSpec, seed: int = 3, w0: float = 0.3) -> Network:
    """Weights large enough to make neurons fire."""
    return Network.initialize(spec, seed, w0)


def _skip() -> NetworkSpec:
    """A hidden layer beside a skip connection input -> output."""
    groups = (Group("input", 6, "input"), Group("hidden0", 5), Group("output", 3, target=True))
    conns = (
        Connection("input-hidden0", "input", "hidden0"),
        Connection("hidden0-output", "hidden0", "output"),
        Connection("skip", "input", "output"),
    )
    return NetworkSpec(groups, conns, feedback="random")


def _two_inputs() -> NetworkSpec:
    groups = (Group("left", 4, "input"), Group("right", 3, "input"), Group("h", 5), Group("out", 3, target=True))
    conns = (
        Connection("left-h", "left", "h"),
        Connection("right-h", "right", "h"),
        Connection("h-out", "h", "out"),
        Connection("right-out", "right", "out", plastic=False),
    )
    return NetworkSpec(groups, conns)


def _two_taus() -> NetworkSpec:
    """Two hidden groups with their own tau_mem (and one its own refractory period) feeding one output."""
    groups = (
        Group("input", 6, "input"),
        Group("fast", 5, neuron=replace(P, tau_mem=5e-3)),
        Group("slow", 4, neuron=replace(P, tau_mem=20e-3, refractory=2e-3)),
        Group("output", 3, target=True),
    )
    conns = (
        Connection("input-fast", "input", "fast"),
        Connection("input-slow", "input", "slow", w0=0.5),
        Connection("fast-output", "fast", "output"),
        Connection("slow-output", "slow", "output"),
    )
    return NetworkSpec(groups, conns, feedback="uniform")


def _mixed() -> NetworkSpec:
    """Fixed and plastic connections, a cycle through two groups, a connection named like a group,
    and every network-wide setting away from its default."""
    groups = (Group("input", 6, "input"), Group("a", 5), Group("b", 4), Group("output", 3, target=True))
    conns = (
        Connection("input-a", "input", "a", plastic=False, w0=0.4),
        Connection("a", "a", "b"),
        Connection("b-a", "b", "a", plastic=False),
        Connection("b-output", "b", "output"),
        Connection("a-output", "a", "output"),
    )
    neuron = NeuronParams(tau_mem=12e-3, refractory=3e-3, axonal_delay=1.2e-3, threshold=-51e-3)
    rule = RuleParams(tau_rise=4e-3, psp_cutoff=1e-6, update_interval=0.25, w_max=0.2)
    return NetworkSpec(
        groups,
        conns,
        feedback="symmetric",
        feedback_delay=2e-3,
        regularizer=RegularizerParams(0.5, 2.0, 50e-3),
        linear=True,
        neuron=neuron,
        rule=rule,
    )


def _loose_ends() -> NetworkSpec:
    """An input group with no connection, a hidden group with none in or out, one with no way out:
    NIR's type inference adds Input and Output nodes to them (input_<g>, output_<g>)."""
    groups = (
        Group("input", 6, "input"),
        Group("unused", 2, "input"),
        Group("observer", 3),
        Group("lonely", 2),
        Group("output", 3, target=True),
    )
    conns = (Connection("input-output", "input", "output"), Connection("input-observer", "input", "observer", False))
    return NetworkSpec(groups, conns, feedback="random")


SPECS = {
    "chain": lambda: NetworkSpec.chain(6, (5,), 3),
    "chain-2-hidden-random": lambda: NetworkSpec.chain(6, (5, 4), 3, feedback="random"),
    "no-hidden": lambda: NetworkSpec.chain(6, (), 3),
    "recurrent": lambda: NetworkSpec.chain(6, (5,), 3, recurrent=True, feedback="uniform"),
    "skip": _skip,
    "two-inputs": _two_inputs,
    "tau-mem-per-group": _two_taus,
    "direct-feedback": lambda: NetworkSpec.chain(6, (5, 4), 3, feedback="direct", regularizer=RegularizerParams()),
    "mixed": _mixed,
    "loose-ends": _loose_ends,
}


def _same_network(a: Network, b: Network) -> None:
    assert list(a.weights) == list(b.weights)
    for name in a.weights:
        np.testing.assert_array_equal(a.weights[name], b.weights[name], err_msg=name)
    assert list(a.feedback) == list(b.feedback)
    for name in a.feedback:
        np.testing.assert_array_equal(a.feedback[name], b.feedback[name], err_msg=name)


@pytest.mark.parametrize("kind", list(SPECS))
def test_round_trip_rebuilds_the_same_spec_and_weights(nir, tmp_path: Path, kind: str) -> None:
    from superspike.outputs.nir import network_from_nir, write_nir

    spec = SPECS[kind]()
    net = _net(spec)
    path = write_nir(net, tmp_path / "net.nir")
    back, notes = network_from_nir(path)
    assert notes == []
    assert back.spec == spec
    _same_network(back, net)


@pytest.mark.parametrize("kind", list(SPECS))
def test_round_trip_against_the_runs_spec(nir, tmp_path: Path, kind: str) -> None:
    from superspike.outputs.nir import network_from_nir, write_nir

    spec = SPECS[kind]()
    net = _net(spec)
    path = write_nir(net, tmp_path / "net.nir")
    back, notes = network_from_nir(path, spec, _net(spec, seed=99))
    assert notes == []
    assert back.spec is spec
    _same_network(back, net)


def test_groups_are_nodes_and_connections_weight_nodes_between_them(nir, tmp_path: Path) -> None:
    from superspike.outputs.nir import write_nir

    spec = NetworkSpec.chain(6, (5,), 3, recurrent=True)
    spec = spec.replace(connections=(*spec.connections, Connection("skip", "input", "output", plastic=False)))
    net = _net(spec)
    graph = nir.read(write_nir(net, tmp_path / "net.nir"))
    kinds = {k: type(n).__name__ for k, n in graph.nodes.items()}
    assert kinds == {
        "input": "Input", "hidden0": "CubaLIF", "output": "CubaLIF", "output:out": "Output",
        "input-hidden0": "Affine", "hidden0-output": "Affine", "hidden0-hidden0": "Affine", "skip": "Affine",
        "input-hidden0:delay": "Delay", "hidden0-output:delay": "Delay", "hidden0-hidden0:delay": "Delay",
        "skip:delay": "Delay",
    }  # fmt: skip
    edges = [tuple(e) for e in graph.edges]
    for c in spec.connections:
        for edge in ((c.pre, f"{c.name}:delay"), (f"{c.name}:delay", c.name), (c.name, c.post)):
            assert edges.count(edge) == 1, edge
    assert ("hidden0-hidden0", "hidden0") in edges  # the recurrent connection is an ordinary edge
    assert ("output", "output:out") in edges and len(edges) == 3 * 4 + 1
    for c in spec.connections:
        node = graph.nodes[c.name]
        np.testing.assert_array_equal(node.weight, net.weights[c.name].T)  # NIR: [post, pre]
        m = node.metadata
        assert (m["connection"], m["pre"], m["post"], bool(m["plastic"])) == (c.name, c.pre, c.post, c.plastic)
        assert bool(m["recurrent"]) == (c.name == "hidden0-hidden0")
    assert [graph.nodes[g.name].metadata["group"] for g in spec.groups] == ["input", "hidden0", "output"]
    assert [int(graph.nodes[g.name].metadata["index"]) for g in spec.groups] == [0, 1, 2]
    assert bool(graph.nodes["output"].metadata["target"]) and not bool(graph.nodes["hidden0"].metadata["target"])


def test_each_group_node_has_its_own_constants(nir, tmp_path: Path) -> None:
    from superspike.outputs.nir import write_nir

    graph = nir.read(write_nir(_net(_two_taus()), tmp_path / "net.nir"))
    for name, tau_mem, refractory in (("fast", 5e-3, 5e-3), ("slow", 20e-3, 2e-3), ("output", 10e-3, 5e-3)):
        lif = graph.nodes[name]
        np.testing.assert_array_equal(lif.tau_mem, np.full(lif.tau_mem.shape, tau_mem))
        np.testing.assert_array_equal(lif.tau_syn, np.full(lif.tau_mem.shape, 5e-3))
        assert float(lif.metadata["refractory"]) == refractory
        assert bool(lif.metadata["own_constants"]) == (name != "output")


def test_file_has_nir_node_types_and_si_parameters(nir, tmp_path: Path) -> None:
    from superspike.outputs.nir import write_nir

    net = _net(NetworkSpec.chain(6, (4,), 2, feedback="uniform"))
    graph = nir.read(write_nir(net, tmp_path / "net.nir"))
    np.testing.assert_array_equal(graph.nodes["input"].input_type["input"], [6])
    np.testing.assert_array_equal(graph.nodes["output:out"].output_type["output"], [2])
    for c, pre, post in (("input-hidden0", 6, 4), ("hidden0-output", 4, 2)):
        aff = graph.nodes[c]
        np.testing.assert_array_equal(aff.weight, net.weights[c].T)  # NIR: [post, pre]
        assert aff.weight.shape == (post, pre)
        np.testing.assert_array_equal(aff.bias, np.zeros(post))
        np.testing.assert_allclose(graph.nodes[f"{c}:delay"].delay, np.full(pre, 0.8e-3), rtol=1e-12)
        lif = graph.nodes[c.split("-")[1]]
        expected = dict(tau_syn=5e-3, tau_mem=10e-3, r=1.0, v_leak=-60e-3, v_threshold=-50e-3, v_reset=-60e-3,
                        w_in=5e-3)  # fmt: skip
        for name, value in expected.items():
            np.testing.assert_allclose(getattr(lif, name), np.full(post, value), rtol=1e-12, err_msg=name)
    meta = graph.metadata
    assert float(meta["dt"]) == 1e-4
    assert float(meta["refractory"]) == 5e-3
    assert "no refractory period" in meta["refractory_note"]
    assert meta["feedback"] == "uniform"
    np.testing.assert_array_equal(meta["feedback_matrices"]["hidden0-output"], net.feedback["hidden0-output"])
    assert str(meta["source"]).startswith("superspike")


def test_nir_equations_give_the_spec_psp(nir, tmp_path: Path) -> None:
    """Solve NIR's CubaLIF equations exactly for one Dirac input spike with the exported parameters
    and compare with the SPEC 1 discrete update: same PSP (a wrong synapse scale would be off by
    a factor of 1/tau_syn = 200)."""
    from superspike.outputs.nir import write_nir

    w = 0.004
    spec = NetworkSpec.chain(1, (), 1)
    graph = nir.read(write_nir(Network(spec, {"input-output": np.array([[w]], np.float32)}, {}), tmp_path / "1.nir"))
    lif, W = graph.nodes["output"], float(graph.nodes["input-output"].weight[0, 0])
    ts, tm, r, w_in = (float(np.ravel(getattr(lif, k))[0]) for k in ("tau_syn", "tau_mem", "r", "w_in"))
    jump = w_in * W / ts  # integral of tau_syn dI/dt = -I + w_in W delta(t)
    t = np.arange(1, 600) * 1e-4
    nir_psp = r * jump * ts / (ts - tm) * (np.exp(-t / ts) - np.exp(-t / tm))
    u, i, spec_psp = 0.0, 0.0, []
    for step in range(600):  # SPEC 1: membrane, decay, then delivery (the spike arrives in step 0)
        u += P.dt / P.tau_mem * (-u + i)
        i *= math.exp(-P.dt / P.tau_syn)
        if step == 0:
            i += w
        spec_psp.append(u)
    spec_psp = np.array(spec_psp[1:])
    assert nir_psp.max() == pytest.approx(spec_psp.max(), rel=0.03)
    assert abs(t[nir_psp.argmax()] - t[spec_psp.argmax()]) <= 3e-4
    assert np.abs(nir_psp - spec_psp).max() < 0.05 * spec_psp.max()


def _old_chain_graph(nir, net: Network):
    """The graph the exporter wrote before networks were graphs (layers input, lif0.., output;
    affine<c> weights, b<c> feedback matrices in the metadata), node for node."""
    spec = net.spec
    groups = [g.name for g in spec.groups]
    p = spec.neuron
    delay = p.delay_steps * p.dt
    nodes = {"input": nir.Input(input_type={"input": np.array([spec.groups[0].n])})}
    edges, prev = [], "input"
    for c, conn in enumerate(spec.connections):
        pre, post = spec.shape(conn)
        nodes[f"delay{c}"] = nir.Delay(delay=np.full(pre, delay), metadata={"note": "axonal delay"})
        nodes[f"affine{c}"] = nir.Affine(weight=net.weights[conn.name].T.copy(), bias=np.zeros(post, np.float32))
        nodes[f"lif{c}"] = nir.CubaLIF(
            tau_syn=np.full(post, p.tau_syn), tau_mem=np.full(post, p.tau_mem), r=np.ones(post),
            v_leak=np.full(post, p.u_rest), v_threshold=np.full(post, p.threshold), v_reset=np.full(post, p.u_rest),
            w_in=np.full(post, p.tau_syn), metadata={"group": groups[c + 1], "refractory": p.refractory},
        )  # fmt: skip
        edges += [(prev, f"delay{c}"), (f"delay{c}", f"affine{c}"), (f"affine{c}", f"lif{c}")]
        prev = f"lif{c}"
    nodes["output"] = nir.Output(output_type={"output": np.array([spec.groups[-1].n])})
    edges.append((prev, "output"))
    meta = {"source": "superspike 0.1.0", "groups": ", ".join(groups), "dt": p.dt, "refractory": p.refractory,
            "axonal_delay": delay, "feedback": spec.feedback, "feedback_delay": spec.feedback_delay}  # fmt: skip
    for c, conn in enumerate(spec.connections):
        if conn.name in net.feedback:
            meta[f"b{c}"] = net.feedback[conn.name]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta)


@pytest.mark.parametrize("feedback", ["random", "symmetric"])
def test_chain_exported_before_groups_had_names_still_imports(nir, tmp_path: Path, feedback: str) -> None:
    from superspike.outputs.nir import network_from_nir

    spec = NetworkSpec.chain(6, (5, 4), 3, feedback=feedback)
    net = _net(spec)
    path = tmp_path / "old.nir"
    nir.write(path, _old_chain_graph(nir, net))
    for given in (None, spec):
        back, notes = network_from_nir(path, given)
        assert notes == []
        assert back.spec == spec
        _same_network(back, net)


def _graph(nir, W0: np.ndarray, W1: np.ndarray, *, delay: float | None = None, linear: bool = False, **lif_kw):
    """A foreign chain Input -> [d0] w0 -> l0 -> [d1] w1 -> l1 -> Output, without metadata."""
    nodes: dict = {"input": nir.Input(input_type={"input": np.array([W0.shape[1]])})}
    edges = []
    prev = "input"
    for c, W in enumerate((W0, W1)):
        post = W.shape[0]
        if delay is not None:
            nodes[f"d{c}"] = nir.Delay(delay=np.full(W.shape[1], delay))
            edges.append((prev, f"d{c}"))
            prev = f"d{c}"
        nodes[f"w{c}"] = nir.Linear(weight=W) if linear else nir.Affine(weight=W, bias=np.zeros(post))
        kw = dict(tau_syn=5e-3, tau_mem=10e-3, r=1.0, v_leak=-60e-3, v_threshold=-50e-3, v_reset=-60e-3, w_in=5e-3)
        kw.update({k: v[c] if isinstance(v, tuple) else v for k, v in lif_kw.items()})
        nodes[f"l{c}"] = nir.CubaLIF(**{k: np.resize(np.asarray(v, float), post) for k, v in kw.items()})
        edges += [(prev, f"w{c}"), (f"w{c}", f"l{c}")]
        prev = f"l{c}"
    nodes["output"] = nir.Output(output_type={"output": np.array([W1.shape[0]])})
    edges.append((prev, "output"))
    return nir.NIRGraph(nodes=nodes, edges=edges)


def test_foreign_graph_folds_r_and_w_in_into_weights(nir, tmp_path: Path) -> None:
    from superspike.outputs.nir import network_from_nir

    rng = np.random.default_rng(0)
    W0, W1 = rng.normal(0, 1e-4, (4, 3)), rng.normal(0, 1e-4, (2, 4))
    path = tmp_path / "foreign.nir"
    nir.write(path, _graph(nir, W0, W1, linear=True, r=[1.0, 2.0, 0.5, 1.0], w_in=1.0))
    net, notes = network_from_nir(path, NetworkSpec.chain(3, (4,), 2))
    r = np.array([1.0, 2.0, 0.5, 1.0])
    np.testing.assert_allclose(net.weights["input-hidden0"], (W0 * r[:, None] / 5e-3).T, rtol=1e-6)
    np.testing.assert_allclose(net.weights["hidden0-output"], (W1 * r[:2, None] / 5e-3).T, rtol=1e-6)  # r resized
    assert any("no Delay nodes" in n for n in notes)
    assert any("no refractory period" in n for n in notes)
    # without a run's spec: the graph's own network, groups and connections named after its nodes
    own, notes = network_from_nir(path)
    assert [(g.name, g.n, g.kind, g.target) for g in own.spec.groups] == [
        ("input", 3, "input", False), ("l0", 4, "lif", False), ("l1", 2, "lif", True),
    ]  # fmt: skip
    assert [(c.name, c.plastic) for c in own.spec.connections] == [("input-l0", True), ("l0-l1", True)]
    np.testing.assert_array_equal(own.weights["input-l0"], net.weights["input-hidden0"])
    assert own.spec.neuron == NeuronParams() and all(g.neuron is None for g in own.spec.groups)
    assert any("no Delay nodes" in n for n in notes) and any("no refractory period" in n for n in notes)


def test_foreign_graph_with_a_recurrent_edge_and_its_own_constants(nir, tmp_path: Path) -> None:
    """A recurrent Linear node l0 -> rec -> l0 is a recurrent connection; a group whose constants
    differ from the first LIF group's gets its own."""
    from superspike.outputs.nir import network_from_nir

    W0, W1 = np.full((4, 3), 1e-5), np.full((2, 4), 1e-5)
    graph = _graph(nir, W0, W1, delay=0.8e-3, tau_mem=(10e-3, 20e-3))
    graph.nodes["rec"] = nir.Linear(weight=np.eye(4) * 1e-5)
    graph.nodes["rec_delay"] = nir.Delay(delay=np.full(4, 0.8e-3))
    graph.edges += [("l0", "rec"), ("rec", "rec_delay"), ("rec_delay", "l0")]  # a Delay after the weights
    path = tmp_path / "rec.nir"
    nir.write(path, graph)
    own, notes = network_from_nir(path)
    assert [n.split(": ", 1)[1] for n in notes] == [
        "NIR's CubaLIF has no refractory period; using superspike's default 0.005 s"
    ]
    assert [(c.name, c.pre, c.post) for c in own.spec.connections] == [
        ("input-l0", "input", "l0"), ("l0-l1", "l0", "l1"), ("l0-l0", "l0", "l0"),
    ]  # fmt: skip
    assert own.spec.recurrent("l0-l0")
    assert own.spec.group("l0").neuron is None
    assert own.spec.group("l1").neuron == replace(P, tau_mem=20e-3)
    np.testing.assert_allclose(own.weights["l0-l0"], np.eye(4) * 1e-5, rtol=1e-6)  # r = 1, w_in = tau_syn
    # against a run: the run must have the recurrent connection and the group's constants
    run = NetworkSpec.chain(3, (4,), 2, recurrent=True)
    groups = tuple(replace(g, neuron=replace(P, tau_mem=20e-3)) if g.name == "output" else g for g in run.groups)
    net, _ = network_from_nir(path, run.replace(groups=groups))
    np.testing.assert_array_equal(net.weights["hidden0-hidden0"], own.weights["l0-l0"])
    with pytest.raises(InputFileError, match=r"output: tau_mem = 0.02 \(configured 0.01\).*\[\[network.group\]\]"):
        network_from_nir(path, run)


def _bad(nir, kind: str):
    W0, W1 = np.full((4, 3), 1e-3), np.full((2, 4), 1e-3)
    if kind == "lif":
        g = _graph(nir, W0, W1)
        old = g.nodes["l0"]
        g.nodes["l0"] = nir.LIF(tau=old.tau_mem, r=old.r, v_leak=old.v_leak, v_threshold=old.v_threshold)
        return g, "is a LIF"
    if kind == "bias":
        g = _graph(nir, W0, W1)
        g.nodes["w1"].bias = np.ones(2)
        return g, "non-zero bias"
    if kind == "reset":
        return _graph(nir, W0, W1, v_reset=-70e-3), "v_reset differs from v_leak"
    if kind == "uneven_tau":
        return _graph(nir, W0, W1, tau_mem=[10e-3, 20e-3, 10e-3, 10e-3]), "differs between neurons"
    if kind == "sizes":
        return _graph(nir, np.full((5, 3), 1e-3), np.full((2, 5), 1e-3)), "needs --hidden 5"
    if kind == "constants":
        return _graph(nir, W0, W1, tau_mem=20e-3), "[neuron] table of a --config file: tau_mem = 0.02"
    if kind == "delay":
        return _graph(nir, W0, W1, delay=2e-3), "axonal_delay = 0.002"
    if kind == "recurrent":
        g = _graph(nir, W0, W1)
        g.nodes["rec"] = nir.Linear(weight=np.eye(4))
        g.edges += [("l0", "rec"), ("rec", "l0")]
        return g, "a connection 'l0-l0' (hidden0 -> hidden0) that the run lacks; add it to the run's [network] table"
    if kind == "no_weight":
        g = _graph(nir, W0, W1)
        g.edges.append(("l0", "l1"))
        return g, "joins two groups without a weight node"
    if kind == "weight_to_output":
        g = _graph(nir, W0, W1)
        g.nodes["w2"] = nir.Linear(weight=np.eye(2))
        g.edges = [e for e in g.edges if e != ("l1", "output")] + [("l1", "w2"), ("w2", "output")]
        return g, "Output node 'output' is fed by Linear 'w2'; expected a CubaLIF"
    if kind == "loose_delay":
        g = _graph(nir, W0, W1)
        g.nodes["d"] = nir.Delay(delay=np.full(4, 1e-3))
        g.edges += [("l0", "d"), ("d", "l1")]
        return g, "Delay node 'd' is not between a group and a weight node"
    if kind == "two_inputs":
        g = _graph(nir, W0, W1)
        g.nodes["input2"] = nir.Input(input_type={"input": np.array([3])})
        g.nodes["w3"] = nir.Linear(weight=W0)
        g.edges += [("input2", "w3"), ("w3", "l0")]
        return g, "the graph's groups input(3) input2(3) l0(4) l1(2) are not the run's"
    raise AssertionError(kind)


BAD = ["lif", "bias", "reset", "uneven_tau", "sizes", "constants", "delay", "recurrent", "no_weight",
       "weight_to_output", "loose_delay", "two_inputs"]  # fmt: skip


@pytest.mark.parametrize("kind", BAD)
def test_bad_graphs_are_one_line_errors(nir, tmp_path: Path, kind: str) -> None:
    from superspike.outputs.nir import network_from_nir

    graph, expected = _bad(nir, kind)
    path = tmp_path / f"{kind}.nir"
    nir.write(path, graph)
    with pytest.raises(InputFileError) as err:
        network_from_nir(path, NetworkSpec.chain(3, (4,), 2))
    msg = str(err.value)
    assert msg.startswith(str(path)) and "\n" not in msg
    assert expected in msg


def test_graph_and_run_that_differ_are_one_line_errors(nir, tmp_path: Path) -> None:
    from superspike.outputs.nir import network_from_nir, write_nir

    path = write_nir(_net(_skip()), tmp_path / "skip.nir")
    chain = NetworkSpec.chain(6, (5,), 3, feedback="random")
    with pytest.raises(InputFileError, match=r"a connection 'skip' \(input -> output\) that the run lacks"):
        network_from_nir(path, chain)
    path = write_nir(_net(chain), tmp_path / "chain.nir")
    with pytest.raises(InputFileError, match=r"the run's connection 'skip' \(input -> output\) is not in the graph"):
        network_from_nir(path, _skip())
    path = write_nir(_net(_two_taus()), tmp_path / "taus.nir")
    plain = _two_taus().replace(groups=tuple(replace(g, neuron=None) for g in _two_taus().groups))
    with pytest.raises(InputFileError) as err:
        network_from_nir(path, plain)
    assert "fast: tau_mem = 0.005 (configured 0.01); slow: tau_mem = 0.02 (configured 0.01)" in str(err.value)
    _, notes = network_from_nir(path, plain.replace(groups=_two_taus().groups, neuron=replace(P, refractory=1e-3)))
    assert [n.split(": ", 1)[1] for n in notes] == [
        "group output was exported with refractory = 0.005 s; this run uses 0.001 s"
    ]


def test_unreadable_files_are_one_line_errors(nir, tmp_path: Path) -> None:
    from superspike.outputs.nir import network_from_nir

    junk = tmp_path / "junk.nir"
    junk.write_text("not hdf5\n")
    for path, expected in ((tmp_path / "missing.nir", "no such file"), (junk, "not a readable NIR graph")):
        with pytest.raises(InputFileError, match=expected) as err:
            network_from_nir(path, NetworkSpec.chain(3, (4,), 2))
        assert "\n" not in str(err.value)


def test_nir_module_does_not_import_the_run_layer() -> None:
    """outputs/nir imports only network, params, errors and io (no import loop with run/train)."""
    import superspike.outputs.nir as module

    tree = ast.parse(Path(module.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    ours = {m for m in imported if m.startswith("superspike")}
    assert ours and all(m == "superspike" or m.split(".")[1] in ("network", "params", "errors", "io") for m in ours)


# -- with the engines and the run layer -----------------------------------------------------------


def _spikes(network: Network, task, seconds: float = 1.0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from superspike.run.simulation import Simulation

    sim = Simulation(network, task)
    rec = sim.record()
    sim.run(seconds, learning=False)
    return {g.name: rec.spikes(g.name) for g in network.spec.groups if g.lif}


@pytest.mark.parametrize("kind", ["chain", "chain-2-hidden-random", "recurrent", "skip", "tau-mem-per-group"])
def test_round_trip_reproduces_spikes_exactly(nir, tmp_path: Path, kind: str) -> None:
    from superspike.outputs.nir import network_from_nir, write_nir

    spec = SPECS[kind]()
    task = small_task(nin=spec.nin, nout=spec.nout)
    net = _net(spec)
    back, _ = network_from_nir(write_nir(net, tmp_path / "net.nir"))
    before, after = _spikes(net, task), _spikes(back, task)
    for name in before:
        assert before[name][0].size > 0, f"{name} is silent; the comparison would be empty"
        np.testing.assert_array_equal(before[name][0], after[name][0], err_msg=name)
        np.testing.assert_array_equal(before[name][1], after[name][1], err_msg=name)


def test_cli_export_then_train_init_from(nir, tmp_path: Path, capsys) -> None:
    task = small_task(nin=20, nout=3, grid=0.25, rate=15)
    inp, tgt = tmp_path / "in.ras", tmp_path / "tg.ras"
    write_ras(inp, task.input.times, task.input.ids)
    write_ras(tgt, task.target.times, task.target.ids)
    common = ["--input", str(inp), "--target", str(tgt), "--hidden", "6", "--burn-in", "0.5", "--quiet"]
    main(["train", *common, "--block-duration", "0.5", "--blocks", "1", "--w0", "0.2", "--out", str(tmp_path / "a")])
    main(["export", str(tmp_path / "a"), str(tmp_path / "a.nir")])
    assert "wrote" in capsys.readouterr().out
    graph = nir.read(tmp_path / "a.nir")
    trained = np.load(tmp_path / "a" / "weights.npz")
    np.testing.assert_array_equal(graph.nodes["hidden0-output"].weight, trained["w/hidden0-output"].T)
    assert "config_toml" in graph.metadata
    # no training blocks: the final weights are the imported ones
    main(["train", *common, "--blocks", "0", "--init-from", str(tmp_path / "a.nir"), "--out", str(tmp_path / "b")])
    again = np.load(tmp_path / "b" / "weights.npz")
    for k in ("w/input-hidden0", "w/hidden0-output"):
        np.testing.assert_array_equal(again[k], trained[k])
    with pytest.raises(SystemExit) as ex:
        main(["train", *common, "--init-from", str(tmp_path / "a.nir"), "--init-weights", str(tmp_path / "x.npz")])
    assert ex.value.code == 2
    assert "init_from" in capsys.readouterr().err


def test_missing_nir_extra_is_a_one_line_message(monkeypatch, tmp_path: Path, capsys) -> None:
    from superspike.outputs.nir import write_nir

    monkeypatch.setitem(sys.modules, "nir", None)  # `import nir` now raises ImportError
    with pytest.raises(UserError) as err:
        write_nir(_net(NetworkSpec.chain(4, (), 2)), tmp_path / "x.nir")
    msg = str(err.value)
    assert "\n" not in msg and "pip install 'superspike[nir]'" in msg
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(SystemExit) as ex:
        main(["export", str(run), str(tmp_path / "x.nir")])
    assert ex.value.code == 2
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert len(err_lines) == 1 and "superspike[nir]" in err_lines[0]
