"""Spikes of a run as Neo objects: one Segment per window, every spike of the run directory in
exactly one SpikeTrain of the right neuron, the target replayed on the loop grid, trains
Elephant can analyse (its van Rossum distance agrees with the project's), and the groups of a
graph named as the network names them."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import small_network, small_task

from superspike.errors import InputFileError, UserError
from superspike.io import read_spk, write_ras
from superspike.network import Connection, Group, Network, NetworkSpec
from superspike.rule.cost import van_rossum_per_neuron
from superspike.run.config import RunConfig
from superspike.run.simulation import Simulation
from superspike.run.train import train

DT = 1e-4


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("neo")
    task = small_task(nin=12, nout=3, grid=0.25, rate=15)
    inp, tgt = tmp / "in.ras", tmp / "tg.ras"
    write_ras(inp, task.input.times, task.input.ids)
    write_ras(tgt, task.target.times, task.target.ids)
    cfg = RunConfig(
        input=str(inp), target=str(tgt), grid=0.25, hidden=(5,), w0=0.3, burn_in=0.5, block_duration=0.5, blocks=2
    )
    train(cfg, tmp / "run", quiet=True)
    return tmp / "run"


def _graph() -> NetworkSpec:
    """Two input groups, a recurrent hidden group, two output groups (one also fed by a skip)."""
    groups = (
        Group("left", 7, "input"),
        Group("right", 5, "input"),
        Group("h", 6),
        Group("o1", 2, target=True),
        Group("o2", 1, target=True),
    )
    conns = (
        Connection("left-h", "left", "h"),
        Connection("right-h", "right", "h"),
        Connection("h-h", "h", "h"),
        Connection("h-o1", "h", "o1"),
        Connection("h-o2", "h", "o2"),
        Connection("right-o2", "right", "o2", plastic=False),
    )
    return NetworkSpec(groups, conns)


@pytest.fixture(scope="module")
def graph_run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("neo_graph")
    task = small_task(nin=12, nout=3, grid=0.25, rate=15)
    inp, tgt = tmp / "in.ras", tmp / "tg.ras"
    write_ras(inp, task.input.times, task.input.ids)
    write_ras(tgt, task.target.times, task.target.ids)
    cfg = RunConfig(
        input=str(inp), target=str(tgt), grid=0.25, network=_graph(), w0=0.3, burn_in=0.5, block_duration=0.5, blocks=1
    )
    train(cfg, tmp / "run", quiet=True)
    return tmp / "run"


@pytest.fixture
def neo():
    pytest.importorskip("elephant")
    return pytest.importorskip("neo")


def _trains(seg, group: str) -> list:
    trains = [st for st in seg.spiketrains if st.annotations["group"] == group]
    assert [st.annotations["neuron"] for st in trains] == list(range(len(trains)))
    return trains


def test_one_segment_per_phase_holds_every_spike(neo, run_dir: Path) -> None:
    from superspike.outputs.neo import run_to_neo

    block = run_to_neo(run_dir)
    assert [s.name for s in block.segments] == ["burn-in", "block 1", "block 2", "test"]
    assert [s.annotations["learning"] for s in block.segments] == [False, True, True, False]
    edges = [(float(s.spiketrains[0].t_start), float(s.spiketrains[0].t_stop)) for s in block.segments]
    assert edges[:3] == [(0.0, 0.5), (0.5, 1.0), (1.0, 1.5)]
    assert edges[3][0] == 1.5 and edges[3][1] >= 1.5 + 0.25
    sizes = {"input": 12, "hidden0": 5, "output": 3, "target": 3}
    assert {g.name: len(g.spiketrains) for g in block.groups} == {k: n * 4 for k, n in sizes.items()}
    for group in ("input", "hidden0", "output"):
        steps, ids = read_spk(run_dir / f"{group}.spk")
        assert steps.size > 0
        got_t, got_i = [], []
        for seg in block.segments:
            trains = _trains(seg, group)
            assert len(trains) == sizes[group]
            for st in trains:
                assert st.units == neo.SpikeTrain([], units="s", t_stop=1).units
                got_t.append(st.times.magnitude)
                got_i.append(np.full(len(st), st.annotations["neuron"]))
        t, i = np.concatenate(got_t), np.concatenate(got_i)
        order = np.lexsort((i, t))
        ref = np.lexsort((ids, steps))
        np.testing.assert_allclose(t[order], steps[ref] * DT, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(i[order], ids[ref])


def test_window_cuts_each_phase_and_target_is_replayed(neo, run_dir: Path) -> None:
    from superspike.outputs.neo import run_to_neo

    block = run_to_neo(run_dir, window=0.2, groups=["output", "target"])
    assert {st.annotations["group"] for s in block.segments for st in s.spiketrains} == {"output", "target"}
    steps, ids = read_spk(run_dir / "output.spk")
    tgt = np.loadtxt(run_dir / "target.ras", comments="#", ndmin=2)
    period = 2500  # grid 0.25 s
    for seg in block.segments:
        a = round(float(seg.spiketrains[0].t_start) / DT)
        assert float(seg.spiketrains[0].t_stop) == pytest.approx((a + 2000) * DT)
        for k, st in enumerate(_trains(seg, "output")):
            want = steps[(ids == k) & (steps >= a) & (steps < a + 2000)] * DT
            np.testing.assert_allclose(st.times.magnitude, want, atol=1e-12)
        for k, st in enumerate(_trains(seg, "target")):
            s = np.floor(tgt[tgt[:, 1] == k, 0] / DT).astype(int)
            reps = np.arange(a // period - 1, (a + 2000) // period + 2)[:, None] * period
            want = np.sort((s[None, :] + reps).ravel())
            want = want[(want >= a) & (want < a + 2000)] * DT
            np.testing.assert_allclose(st.times.magnitude, want, atol=1e-12)


def test_given_windows_and_elephant_analysis(neo, run_dir: Path) -> None:
    import quantities as pq
    from elephant.spike_train_dissimilarity import van_rossum_distance
    from elephant.statistics import mean_firing_rate

    from superspike.outputs.neo import run_to_neo

    block = run_to_neo(run_dir, windows=[(0.15, 0.6), (1.0, 1.75)])
    assert [s.name for s in block.segments] == ["window 0", "window 1"]
    assert float(block.segments[0].spiketrains[0].t_start) == pytest.approx(0.15)  # on the grid, not 0.1499
    seg = block.segments[1]
    out, tgt = _trains(seg, "output"), _trains(seg, "target")
    assert sum(len(st) for st in out) > 0 and sum(len(st) for st in tgt) > 0
    rates = [float(mean_firing_rate(st).rescale("Hz")) for st in out]
    assert rates == pytest.approx([len(st) / 0.75 for st in out])
    ours = van_rossum_per_neuron(
        np.concatenate([st.times.magnitude for st in out]),
        np.concatenate([np.full(len(st), k) for k, st in enumerate(out)]),
        np.concatenate([st.times.magnitude for st in tgt]),
        np.concatenate([np.full(len(st), k) for k, st in enumerate(tgt)]),
        len(out),
        kernel="single",
        tau=10e-3,
    )
    theirs = [
        van_rossum_distance([o.rescale("ms"), t.rescale("ms")], 10 * pq.ms)[0, 1] for o, t in zip(out, tgt, strict=True)
    ]
    np.testing.assert_allclose(ours, theirs, rtol=1e-9)


def test_recorder_to_neo(neo) -> None:
    from superspike.outputs.neo import recorder_to_neo

    task = small_task(nin=10, nout=2)
    net = small_network(task, hidden=(4,))
    sim = Simulation(net, task)
    rec = sim.record(windows=[(0.0, 0.1), (0.3, 0.4)])
    sim.run(0.5, learning=False)
    block = recorder_to_neo(rec, net)
    assert len(block.segments) == 2
    steps, _ = rec.spikes("hidden0")
    n = sum(len(st) for s in block.segments for st in _trains(s, "hidden0"))
    assert n == steps.size > 0
    assert {g.name for g in block.groups} == {"input", "hidden0", "output", "target"}


def test_bad_requests_are_one_line_errors(neo, run_dir: Path, tmp_path: Path) -> None:
    from superspike.outputs.neo import run_to_neo

    with pytest.raises(InputFileError, match="not a run directory"):
        run_to_neo(tmp_path)
    with pytest.raises(UserError, match="no group 'hidden3'"):
        run_to_neo(run_dir, groups=["hidden3"])
    with pytest.raises(UserError, match="window 0"):
        run_to_neo(run_dir, windows=[(0.5, 0.2)])


def test_missing_neo_extra_is_a_one_line_message(monkeypatch, run_dir: Path) -> None:
    from superspike.outputs.neo import run_to_neo

    monkeypatch.setitem(sys.modules, "neo", None)
    with pytest.raises(UserError) as err:
        run_to_neo(run_dir)
    assert "\n" not in str(err.value) and "pip install 'superspike[neo]'" in str(err.value)


def test_graph_groups_are_named_as_the_network_names_them(neo, graph_run_dir: Path) -> None:
    from superspike.outputs.neo import run_to_neo

    block = run_to_neo(graph_run_dir)
    assert [s.name for s in block.segments] == ["burn-in", "block 1", "test"]
    sizes = {"left": 7, "right": 5, "h": 6, "o1": 2, "o2": 1, "target": 3}
    kinds = {"left": "input", "right": "input", "h": "hidden", "o1": "output", "o2": "output", "target": "target"}
    assert [g.name for g in block.groups] == list(sizes)
    assert {g.name: len(g.spiketrains) for g in block.groups} == {k: n * 3 for k, n in sizes.items()}
    assert {g.name: g.annotations["kind"] for g in block.groups} == kinds
    for group in ("left", "right", "h", "o1", "o2"):
        steps, ids = read_spk(graph_run_dir / f"{group}.spk")
        assert ids.size == 0 or ids.max() < sizes[group]  # ids local to the group
        got_t, got_i = [], []
        for seg in block.segments:
            trains = _trains(seg, group)
            assert len(trains) == sizes[group]
            assert [st.name for st in trains] == [f"{group} {k}" for k in range(sizes[group])]
            assert {st.annotations["kind"] for st in trains} == {kinds[group]}
            got_t += [st.times.magnitude for st in trains]
            got_i += [np.full(len(st), st.annotations["neuron"]) for st in trains]
        t, i = np.concatenate(got_t), np.concatenate(got_i)
        order, ref = np.lexsort((i, t)), np.lexsort((ids, steps))
        np.testing.assert_allclose(t[order], steps[ref] * DT, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(i[order], ids[ref])
    assert sum(len(st) for g in block.groups if g.name in ("h", "o1", "o2") for st in g.spiketrains) > 0
    targets = _trains(block.segments[0], "target")
    assert [(st.annotations["output_group"], st.annotations["output_neuron"]) for st in targets] == [
        ("o1", 0),
        ("o1", 1),
        ("o2", 0),
    ]
    with pytest.raises(UserError, match="no group 'output'; the run has left, right, h, o1, o2, target"):
        run_to_neo(graph_run_dir, groups=["output"])
    only = run_to_neo(graph_run_dir, window=0.1, groups=["o2", "target"])
    assert [g.name for g in only.groups] == ["o2", "target"]


def test_recorder_to_neo_on_a_graph(neo) -> None:
    from superspike.outputs.neo import recorder_to_neo

    spec = _graph()
    task = small_task(nin=spec.nin, nout=spec.nout)
    net = Network.initialize(spec, 3, 0.3)
    sim = Simulation(net, task)
    rec = sim.record()
    sim.run(0.5, learning=False)
    block = recorder_to_neo(rec, net)
    assert [g.name for g in block.groups] == ["left", "right", "h", "o1", "o2", "target"]
    for name in ("left", "h", "o2"):
        steps, ids = rec.spikes(name)
        trains = _trains(block.segments[0], name)
        assert sum(len(st) for st in trains) == steps.size > 0
        for k, st in enumerate(trains):
            np.testing.assert_allclose(st.times.magnitude, np.sort(steps[ids == k]) * DT, atol=1e-12)


def test_run_directory_written_before_networks_were_graphs(neo, run_dir: Path, tmp_path: Path) -> None:
    """A config.toml without a [network] table names the chain's groups input, hidden0, output."""
    import shutil
    import tomllib

    import tomli_w

    from superspike.outputs.neo import run_to_neo

    old = tmp_path / "old"
    shutil.copytree(run_dir, old)
    data = tomllib.loads((old / "config.toml").read_text())
    assert [g["name"] for g in data.pop("network")["group"]] == ["input", "hidden0", "output"]
    data["hidden"] = [5]
    (old / "config.toml").write_text(tomli_w.dumps(data))
    block, again = run_to_neo(old, window=0.2), run_to_neo(run_dir, window=0.2)
    assert [g.name for g in block.groups] == ["input", "hidden0", "output", "target"]
    for a, b in zip(block.groups, again.groups, strict=True):
        assert [len(st) for st in a.spiketrains] == [len(st) for st in b.spiketrains]
