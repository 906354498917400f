"""NIR export and import: the file is what NIR defines (node types, SI parameters, Dirac-spike
synapse convention), a round trip reproduces the original network's spikes exactly, foreign graphs
of the same shape import with r and w_in folded into the weights, and bad graphs are one-line errors."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import small_network, small_task

from superspike.cli import main
from superspike.errors import InputFileError, UserError
from superspike.io import write_ras
from superspike.network import Network, NetworkSpec
from superspike.params import NeuronParams
from superspike.run.simulation import Simulation


@pytest.fixture
def nir():
    return pytest.importorskip("nir")


def _spikes(network: Network, task, seconds: float = 1.0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    sim = Simulation(network, task)
    rec = sim.record()
    sim.run(seconds, learning=False)
    return {name: rec.spikes(name) for name in sim.names}


@pytest.mark.parametrize(("hidden", "feedback"), [((8,), "random"), ((), "symmetric"), ((7, 5), "symmetric")])
def test_round_trip_reproduces_spikes_exactly(nir, tmp_path: Path, hidden, feedback) -> None:
    from superspike.outputs.nir import network_from_nir, write_nir

    task = small_task(nin=20, nout=3)
    net = small_network(task, hidden=hidden, feedback=feedback)
    path = write_nir(net, tmp_path / "net.nir")
    back, notes = network_from_nir(path, net.spec)
    assert notes == []
    for a, b in zip(net.weights, back.weights, strict=True):
        np.testing.assert_array_equal(a, b)
    assert back.feedback.keys() == net.feedback.keys()
    for c in net.feedback:
        np.testing.assert_array_equal(back.feedback[c], net.feedback[c])
    before, after = _spikes(net, task), _spikes(back, task)
    for name in before:
        assert before[name][0].size > 0, f"{name} is silent; the comparison would be empty"
        np.testing.assert_array_equal(before[name][0], after[name][0], err_msg=name)
        np.testing.assert_array_equal(before[name][1], after[name][1], err_msg=name)


def test_file_has_nir_node_types_and_si_parameters(nir, tmp_path: Path) -> None:
    from superspike.outputs.nir import write_nir

    task = small_task(nin=6, nout=2)
    net = small_network(task, hidden=(4,), feedback="uniform")
    graph = nir.read(write_nir(net, tmp_path / "net.nir"))
    kinds = {k: type(n).__name__ for k, n in graph.nodes.items()}
    assert kinds == {
        "input": "Input", "delay0": "Delay", "affine0": "Affine", "lif0": "CubaLIF",
        "delay1": "Delay", "affine1": "Affine", "lif1": "CubaLIF", "output": "Output",
    }  # fmt: skip
    assert {tuple(e) for e in graph.edges} == {
        ("input", "delay0"), ("delay0", "affine0"), ("affine0", "lif0"), ("lif0", "delay1"),
        ("delay1", "affine1"), ("affine1", "lif1"), ("lif1", "output"),
    }  # fmt: skip
    np.testing.assert_array_equal(graph.nodes["input"].input_type["input"], [6])
    np.testing.assert_array_equal(graph.nodes["output"].output_type["output"], [2])
    for c, (pre, post) in enumerate([(6, 4), (4, 2)]):
        aff = graph.nodes[f"affine{c}"]
        np.testing.assert_array_equal(aff.weight, net.weights[c].T)  # NIR: [post, pre]
        assert aff.weight.shape == (post, pre)
        np.testing.assert_array_equal(aff.bias, np.zeros(post))
        np.testing.assert_allclose(graph.nodes[f"delay{c}"].delay, np.full(pre, 0.8e-3), rtol=1e-12)
        lif = graph.nodes[f"lif{c}"]
        expected = dict(tau_syn=5e-3, tau_mem=10e-3, r=1.0, v_leak=-60e-3, v_threshold=-50e-3, v_reset=-60e-3,
                        w_in=5e-3)  # fmt: skip
        for name, value in expected.items():
            np.testing.assert_allclose(getattr(lif, name), np.full(post, value), rtol=1e-12, err_msg=name)
    meta = graph.metadata
    assert float(meta["dt"]) == 1e-4
    assert float(meta["refractory"]) == 5e-3
    assert "no refractory period" in meta["refractory_note"]
    assert meta["feedback"] == "uniform"
    np.testing.assert_array_equal(meta["b1"], net.feedback[1])
    assert str(meta["source"]).startswith("superspike")


def test_nir_equations_give_the_spec_psp(nir, tmp_path: Path) -> None:
    """Solve NIR's CubaLIF equations exactly for one Dirac input spike with the exported parameters
    and compare with the SPEC 1 discrete update: same PSP (a wrong synapse scale would be off by
    a factor of 1/tau_syn = 200)."""
    from superspike.outputs.nir import write_nir

    w = 0.004
    spec = NetworkSpec(1, (), 1)
    graph = nir.read(write_nir(Network(spec, [np.array([[w]], np.float32)], {}), tmp_path / "one.nir"))
    lif, W = graph.nodes["lif0"], float(graph.nodes["affine0"].weight[0, 0])
    ts, tm, r, w_in = (float(np.ravel(getattr(lif, k))[0]) for k in ("tau_syn", "tau_mem", "r", "w_in"))
    jump = w_in * W / ts  # integral of tau_syn dI/dt = -I + w_in W delta(t)
    t = np.arange(1, 600) * 1e-4
    nir_psp = r * jump * ts / (ts - tm) * (np.exp(-t / ts) - np.exp(-t / tm))
    p = NeuronParams()
    u, i, spec_psp = 0.0, 0.0, []
    for step in range(600):  # SPEC 1: membrane, decay, then delivery (the spike arrives in step 0)
        u += p.dt / p.tau_mem * (-u + i)
        i *= math.exp(-p.dt / p.tau_syn)
        if step == 0:
            i += w
        spec_psp.append(u)
    spec_psp = np.array(spec_psp[1:])
    assert nir_psp.max() == pytest.approx(spec_psp.max(), rel=0.03)
    assert abs(t[nir_psp.argmax()] - t[spec_psp.argmax()]) <= 3e-4
    assert np.abs(nir_psp - spec_psp).max() < 0.05 * spec_psp.max()


def _graph(nir, W0: np.ndarray, W1: np.ndarray, *, delay: float | None = None, linear: bool = False, **lif_kw):
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
        kw.update(lif_kw)
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
    net, notes = network_from_nir(path, NetworkSpec(3, (4,), 2))
    r = np.array([1.0, 2.0, 0.5, 1.0])
    np.testing.assert_allclose(net.weights[0], (W0 * r[:, None] / 5e-3).T, rtol=1e-6)
    np.testing.assert_allclose(net.weights[1], (W1 * r[:2, None] / 5e-3).T, rtol=1e-6)  # r resized to 2
    assert any("no Delay nodes" in n for n in notes)
    assert any("no refractory period" in n for n in notes)


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
        return _graph(nir, W0, W1, tau_mem=20e-3), "[neuron] table"
    if kind == "delay":
        return _graph(nir, W0, W1, delay=2e-3), "axonal_delay = 0.002"
    if kind == "recurrent":
        g = _graph(nir, W0, W1)
        g.nodes["rec"] = nir.Linear(weight=np.eye(4))
        g.edges += [("l0", "rec"), ("rec", "l0")]
        return g, "without recurrence"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["lif", "bias", "reset", "uneven_tau", "sizes", "constants", "delay", "recurrent"])
def test_bad_graphs_are_one_line_errors(nir, tmp_path: Path, kind: str) -> None:
    from superspike.outputs.nir import network_from_nir

    graph, expected = _bad(nir, kind)
    path = tmp_path / f"{kind}.nir"
    nir.write(path, graph)
    with pytest.raises(InputFileError) as err:
        network_from_nir(path, NetworkSpec(3, (4,), 2))
    msg = str(err.value)
    assert msg.startswith(str(path)) and "\n" not in msg
    assert expected in msg


def test_unreadable_files_are_one_line_errors(nir, tmp_path: Path) -> None:
    from superspike.outputs.nir import network_from_nir

    junk = tmp_path / "junk.nir"
    junk.write_text("not hdf5\n")
    for path, expected in ((tmp_path / "missing.nir", "no such file"), (junk, "not a readable NIR graph")):
        with pytest.raises(InputFileError, match=expected) as err:
            network_from_nir(path, NetworkSpec(3, (4,), 2))
        assert "\n" not in str(err.value)


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
    np.testing.assert_array_equal(graph.nodes["affine1"].weight, trained["w1"].T)
    assert "config_toml" in graph.metadata
    # no training blocks: the final weights are the imported ones
    main(["train", *common, "--blocks", "0", "--init-from", str(tmp_path / "a.nir"), "--out", str(tmp_path / "b")])
    again = np.load(tmp_path / "b" / "weights.npz")
    for k in ("w0", "w1"):
        np.testing.assert_array_equal(again[k], trained[k])
    with pytest.raises(SystemExit) as ex:
        main(["train", *common, "--init-from", str(tmp_path / "a.nir"), "--init-weights", str(tmp_path / "x.npz")])
    assert ex.value.code == 2
    assert "init_from" in capsys.readouterr().err


def test_missing_nir_extra_is_a_one_line_message(monkeypatch, tmp_path: Path, capsys) -> None:
    from superspike.outputs.nir import write_nir

    monkeypatch.setitem(sys.modules, "nir", None)  # `import nir` now raises ImportError
    task = small_task(nin=4, nout=2)
    with pytest.raises(UserError) as err:
        write_nir(small_network(task, hidden=()), tmp_path / "x.nir")
    msg = str(err.value)
    assert "\n" not in msg and "pip install 'superspike[nir]'" in msg
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(SystemExit) as ex:
        main(["export", str(run), str(tmp_path / "x.nir")])
    assert ex.value.code == 2
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert len(err_lines) == 1 and "superspike[nir]" in err_lines[0]
