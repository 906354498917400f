"""Runs of graph networks through the run layer: --recurrent, --feedback direct, a [network] table
(skip connection, two hidden groups, two input groups), sizes from the task, the run directory
by group name, exact reruns from config.toml and resumes, and errors that name the key."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest
from conftest import small_task_files

from superspike import Connection
from superspike.cli import main
from superspike.errors import ConfigError
from superspike.outputs.plots import load_run
from superspike.outputs.rundir import read_curve
from superspike.run.config import GraphConfig, GroupConfig, RunConfig, load_config, network_spec, resolve
from superspike.run.simulation import Simulation
from superspike.run.train import train

QUICK = ["--burn-in", "0.5", "--block-duration", "0.5", "--blocks", "3", "--w0", "0.2", "--quiet"]

#: two hidden groups with different membrane time constants, both feeding the output, and a
#: fixed skip connection from the input straight to the output; input and output sizes from the task
GRAPH_TOML = """
[[network.group]]
name = "input"
kind = "input"

[[network.group]]
name = "fast"
n = 12

[[network.group]]
name = "slow"
n = 8
[network.group.neuron]
tau_mem = 0.02

[[network.group]]
name = "output"
target = true

[[network.connection]]
pre = "input"
post = "fast"

[[network.connection]]
pre = "input"
post = "slow"

[[network.connection]]
pre = "fast"
post = "output"

[[network.connection]]
pre = "slow"
post = "output"

[[network.connection]]
name = "skip"
pre = "input"
post = "output"
plastic = false
w0 = 0.1
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """40 inputs, 4 outputs, a 0.25 s loop."""
    return small_task_files(tmp_path_factory.mktemp("task"))


def _train_cli(files: tuple[Path, Path], out: Path, *more: str) -> Path:
    main(["train", "--input", str(files[0]), "--target", str(files[1]), *QUICK, "--out", str(out), *more])
    return out


def _same_results(a: Path, b: Path) -> None:
    """Two run directories hold the same run: every cost line (but the wall time), spike file and weight."""
    ca, cb = read_curve(a), read_curve(b)
    assert set(ca) == set(cb)
    for key in ca:
        if key != "wall_s":
            np.testing.assert_array_equal(ca[key], cb[key], err_msg=key)
    for spk in a.glob("*.spk"):
        assert spk.read_bytes() == (b / spk.name).read_bytes(), spk.name
    with np.load(a / "weights.npz") as wa, np.load(b / "weights.npz") as wb:
        assert sorted(wa.files) == sorted(wb.files)
        for k in wa.files:
            np.testing.assert_array_equal(wa[k], wb[k], err_msg=k)


def _rerun(run: Path, tmp_path: Path) -> Path:
    again = tmp_path / f"{run.name}-again"
    main(["train", "--config", str(run / "config.toml"), "--out", str(again), "--quiet"])
    _same_results(run, again)
    return again


# --- the chain options -------------------------------------------------------------------------


def test_recurrent_adds_a_plastic_self_connection_to_each_hidden_layer(files, tmp_path: Path) -> None:
    run = _train_cli(files, tmp_path / "rec", "--hidden", "10", "--hidden", "6", "--recurrent")
    cfg = load_config(run / "config.toml")
    assert [(c.name, c.pre, c.post, c.plastic) for c in cfg.network.connections] == [
        ("input-hidden0", "input", "hidden0", True),
        ("hidden0-hidden1", "hidden0", "hidden1", True),
        ("hidden1-output", "hidden1", "output", True),
        ("hidden0-hidden0", "hidden0", "hidden0", True),
        ("hidden1-hidden1", "hidden1", "hidden1", True),
    ]
    with np.load(run / "weights.npz") as w:
        assert w["w/hidden0-hidden0"].shape == (10, 10) and w["w/hidden1-hidden1"].shape == (6, 6)
        start = resolve(load_config(run / "config.toml"))
        from superspike.run.train import build_network

        initial, _ = build_network(start.config, start.spec)
        # the recurrent weights learned (they are plastic and their post group receives an error)
        assert not np.array_equal(w["w/hidden0-hidden0"], initial.weights["hidden0-hidden0"])
    curve = read_curve(run)
    assert {"rate_hidden0_hz", "rate_hidden1_hz", "rate_output_hz"} <= set(curve)
    assert "rate_input_hz" not in curve  # rates of the LIF groups only
    _rerun(run, tmp_path)


def test_recurrent_with_fixed_hidden_keeps_the_recurrent_weights_too(files) -> None:
    cfg = RunConfig(input=str(files[0]), target=str(files[1]), hidden=(6,), recurrent=True, fixed_hidden=True)
    spec = resolve(cfg).spec
    assert {c.name: c.plastic for c in spec.connections} == {
        "input-hidden0": False, "hidden0-output": True, "hidden0-hidden0": False}  # fmt: skip


def test_recurrent_without_a_hidden_layer_is_an_error_naming_the_key(files, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["train", "--input", str(files[0]), "--target", str(files[1]), "--recurrent", *QUICK])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "recurrent: adds a connection to each hidden layer, but there is none" in err


def test_direct_feedback_gives_each_hidden_layer_its_own_matrix(files, tmp_path: Path) -> None:
    run = _train_cli(files, tmp_path / "dfa", "--hidden", "10", "--hidden", "6", "--feedback", "direct")
    assert load_config(run / "config.toml").feedback == "direct"
    with np.load(run / "weights.npz") as w:
        # b/<output group>-<hidden group>, [output, hidden]
        assert sorted(k for k in w.files if k.startswith("b/")) == ["b/output-hidden0", "b/output-hidden1"]
        assert w["b/output-hidden0"].shape == (4, 10) and w["b/output-hidden1"].shape == (4, 6)
    cost = read_curve(run)["cost"]
    assert np.isfinite(cost).all()
    _rerun(run, tmp_path)


# --- a [network] table -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def graph_run(files, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("graph")
    conf = folder / "net.toml"
    conf.write_text(GRAPH_TOML)
    return _train_cli(files, folder / "run", "--config", str(conf), "--seed", "4")


def test_network_table_runs_with_sizes_from_the_task(graph_run: Path) -> None:
    cfg = load_config(graph_run / "config.toml")
    assert [(g.name, g.n, g.kind, g.target) for g in cfg.network.groups] == [
        ("input", 40, "input", False), ("fast", 12, "lif", False), ("slow", 8, "lif", False),
        ("output", 4, "lif", True)]  # fmt: skip
    assert cfg.network.groups[2].neuron == {"tau_mem": 0.02}
    assert [c.name for c in cfg.network.connections] == [
        "input-fast",
        "input-slow",
        "fast-output",
        "slow-output",
        "skip",
    ]
    assert cfg.hidden is None and cfg.seed == 4
    for name in ("input", "fast", "slow", "output"):
        assert (graph_run / f"{name}.spk").is_file(), name
    curve = read_curve(graph_run)
    assert {"rate_fast_hz", "rate_slow_hz", "rate_output_hz"} <= set(curve) and len(curve["cost"]) == 4
    with np.load(graph_run / "weights.npz") as w:
        assert sorted(w.files) == ["w/fast-output", "w/input-fast", "w/input-slow", "w/skip", "w/slow-output"]
        assert w["w/skip"].shape == (40, 4)
        # the skip connection is fixed: its weights are the initial draw, scale w0 = 0.1
        start = resolve(cfg)
        from superspike.run.train import build_network

        initial, _ = build_network(start.config, start.spec)
        np.testing.assert_array_equal(w["w/skip"], initial.weights["skip"])
        assert not np.array_equal(w["w/fast-output"], initial.weights["fast-output"])
    spec = network_spec(cfg)
    assert spec.neuron_of("slow").tau_mem == 0.02 and spec.neuron_of("fast").tau_mem == 0.01


def test_network_table_reruns_exactly_from_config_toml(graph_run: Path, tmp_path: Path) -> None:
    again = _rerun(graph_run, tmp_path)
    assert (again / "config.toml").read_text() == (graph_run / "config.toml").read_text()


def test_python_api_builds_the_same_graph_in_a_few_lines(files, graph_run: Path, tmp_path: Path) -> None:
    graph = GraphConfig(
        groups=(
            GroupConfig("input", kind="input"),
            GroupConfig("fast", 12),
            GroupConfig("slow", 8, neuron={"tau_mem": 0.02}),
            GroupConfig("output", target=True),
        ),
        connections=(
            Connection("input-fast", "input", "fast"),
            Connection("input-slow", "input", "slow"),
            Connection("fast-output", "fast", "output"),
            Connection("slow-output", "slow", "output"),
            Connection("skip", "input", "output", plastic=False, w0=0.1),
        ),
    )
    cfg = RunConfig(input=str(files[0]), target=str(files[1]), network=graph, seed=4, w0=0.2, burn_in=0.5,
                    block_duration=0.5, blocks=3)  # fmt: skip
    out = tmp_path / "api"
    train(cfg, out, quiet=True)
    assert load_config(out / "config.toml") == load_config(graph_run / "config.toml")
    _same_results(graph_run, out)


def test_plot_and_animation_name_the_groups(graph_run: Path, tmp_path: Path) -> None:
    from superspike.outputs.animate import animate_run
    from superspike.outputs.plots import plot_run

    run = load_run(graph_run)
    assert run.names == ["input", "fast", "slow", "output"] and run.sizes == (40, 12, 8, 4)
    s, i = run.output_spikes(run.last_window, run.end)
    assert s.size and i.max() < 4 and s.min() >= run.last_window
    assert plot_run(graph_run, tmp_path / "p.png", dpi=30).is_file()
    assert animate_run(graph_run, tmp_path / "a.gif", max_frames=2, dpi=30).is_file()


def test_two_input_groups_split_the_task_input(files, tmp_path: Path) -> None:
    """The task's 40 input ids: the first group declares 15, the second takes the other 25."""
    graph = {
        "group": [
            {"name": "left", "kind": "input", "n": 15},
            {"name": "right", "kind": "input"},
            {"name": "h", "n": 6},
            {"name": "output", "target": True},
        ],
        "connection": [
            {"pre": "left", "post": "h"},
            {"pre": "right", "post": "h"},
            {"pre": "h", "post": "output"},
            {"pre": "right", "post": "output", "plastic": False},
        ],
    }
    cfg = RunConfig(input=str(files[0]), target=str(files[1]), network=graph, burn_in=0.5, block_duration=0.5,
                    blocks=1, w0=0.2)  # fmt: skip
    r = resolve(cfg)
    assert [(g.name, g.n) for g in r.spec.groups] == [("left", 15), ("right", 25), ("h", 6), ("output", 4)]
    res = train(cfg, tmp_path / "two", quiet=True, record=True)
    # the input groups replay the task's ids 0..14 and 15..39, as ids local to each group
    from superspike.run.schedule import Schedule
    from superspike.task.replay import Replay

    end = Schedule.create(0.5, 0.5, 1, r.task.grid, 1e-4, 1e-3).end
    s, i = Replay.from_raster(r.task.input, r.task.grid, 1e-4).events(0, end)
    for name, lo, hi in (("left", 0, 15), ("right", 15, 40)):
        got_s, got_i = res.spikes.spikes(name)
        keep = (i >= lo) & (i < hi)
        assert got_s.size > 0
        np.testing.assert_array_equal(got_s, s[keep])
        np.testing.assert_array_equal(got_i, i[keep] - lo)
    assert (tmp_path / "two" / "left.spk").is_file() and (tmp_path / "two" / "right.spk").is_file()


def test_declared_sizes_must_fit_the_task(files, tmp_path: Path, capsys) -> None:
    conf = tmp_path / "net.toml"
    conf.write_text(GRAPH_TOML.replace('name = "output"\ntarget = true', 'name = "output"\ntarget = true\nn = 5'))
    with pytest.raises(SystemExit) as exc:
        main(["train", "--input", str(files[0]), "--target", str(files[1]), "--config", str(conf), *QUICK])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "network.group.output.n: declares 5, but the task has 4 output neurons (its target ids)" in err
    with pytest.raises(ConfigError, match=r"network\.group\.input\.n: declares 30, but the task has 100 input"):
        resolve(RunConfig(task="timing", network=_graph(GRAPH_TOML, n_in=30)))
    two_open = _graph(GRAPH_TOML).to_dict()
    two_open["group"].insert(1, {"name": "more", "kind": "input"})
    with pytest.raises(ConfigError, match=r"network\.group\.more\.n: give the size of every input group but one"):
        resolve(RunConfig(task="timing", network=two_open))


def _graph(text: str, n_in: int | None = None, n_out: int | None = None) -> GraphConfig:
    import tomllib

    from superspike.run.config import graph_from_dict

    data = tomllib.loads(text)["network"]
    for g in data["group"]:
        if g["name"] == "input" and n_in is not None:
            g["n"] = n_in
        if g["name"] == "output" and n_out is not None:
            g["n"] = n_out
    return graph_from_dict(data)


# --- layers: task < file < options ---------------------------------------------------------------


def test_options_hidden_replaces_the_file_graph_but_recurrent_alone_cannot(files, tmp_path: Path, capsys) -> None:
    conf = tmp_path / "net.toml"
    conf.write_text(GRAPH_TOML)
    run = _train_cli(files, tmp_path / "chain", "--config", str(conf), "--hidden", "5", "--blocks", "0")
    assert [g.name for g in load_config(run / "config.toml").network.groups] == ["input", "hidden0", "output"]
    with pytest.raises(SystemExit) as exc:
        main(["train", "--input", str(files[0]), "--target", str(files[1]), "--config", str(conf), "--recurrent",
              *QUICK])  # fmt: skip
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "command line: recurrent: changes a chain (hidden), but the configuration" in err


def test_a_task_suggestion_never_overrides_a_given_graph() -> None:
    """timing-hidden suggests hidden = [4]; a graph given in any layer replaces it."""
    r = resolve(RunConfig(task="timing-hidden", network=_graph(GRAPH_TOML)))
    assert [g.name for g in r.spec.hidden_groups] == ["fast", "slow"]
    assert r.config.blocks == 30  # the task's other suggestions still apply


def test_resolving_twice_changes_nothing(files) -> None:
    for cfg in (
        RunConfig(task="xor"),
        RunConfig(task="timing-hidden", recurrent=True, feedback="direct"),
        RunConfig(input=str(files[0]), target=str(files[1]), network=_graph(GRAPH_TOML)),
    ):
        once = resolve(cfg).config
        assert resolve(once).config == once


# --- resume --------------------------------------------------------------------------------------


def test_an_interrupted_graph_run_resumes_to_the_same_result(files, graph_run: Path, tmp_path: Path, monkeypatch):
    """SIGTERM in the middle of block 1 (the signal handler only raises a flag; the run writes a
    checkpoint keyed group/NAME/FIELD and conn/NAME/FIELD), then --resume: the uninterrupted run."""
    out = tmp_path / "run"
    conf = tmp_path / "net.toml"
    conf.write_text(GRAPH_TOML)
    original = Simulation.run_steps
    calls = {"n": 0}

    def interrupting(self, n_steps, learning=True, eta=1e-3):
        original(self, n_steps, learning, eta)
        calls["n"] += 1
        if calls["n"] == 5:  # in block 1 (calls end at update steps + 1 and at schedule boundaries)
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(Simulation, "run_steps", interrupting)
    with pytest.raises(SystemExit) as exc:
        _train_cli(files, out, "--config", str(conf), "--seed", "4")
    assert exc.value.code == 128 + signal.SIGTERM
    monkeypatch.setattr(Simulation, "run_steps", original)
    assert not (out / "weights.npz").exists()
    with np.load(out / "checkpoint.npz") as ck:
        assert "state/group/slow/u" in ck.files and "state/conn/skip/w" in ck.files
        assert "state/conn/skip/el" not in ck.files  # a fixed connection keeps only its weights
    main(["train", "--resume", str(out), "--quiet"])
    _same_results(graph_run, out)


def test_a_network_spec_or_its_groups_serve_as_the_graph_too() -> None:
    """RunConfig(network=...) takes a NetworkSpec (its groups and connections), Group objects, or the
    [network] table as a dict: one resolved configuration."""
    from superspike import Group, NetworkSpec
    from superspike.params import NeuronParams

    groups = (Group("input", 100, "input"), Group("h", 5, neuron=NeuronParams(tau_mem=0.02)),
              Group("output", 1, target=True))  # fmt: skip
    conns = (Connection("in", "input", "h"), Connection("rec", "h", "h"), Connection("out", "h", "output"))
    table = {
        "group": [
            {"name": "input", "kind": "input"},
            {"name": "h", "n": 5, "neuron": {"tau_mem": 0.02}},
            {"name": "output", "target": True},
        ],
        "connection": [
            {"name": "in", "pre": "input", "post": "h"},
            {"name": "rec", "pre": "h", "post": "h"},
            {"name": "out", "pre": "h", "post": "output"},
        ],
    }
    resolved = [
        resolve(RunConfig(task="timing", network=net)).config
        for net in (NetworkSpec(groups, conns), GraphConfig(groups, conns), table)
    ]
    assert resolved[0] == resolved[1] == resolved[2]
    assert resolved[0].network.groups[1].neuron == {"tau_mem": 0.02}
