"""Spikes of a run as Neo objects: one Segment per window, every spike of the run directory in
exactly one SpikeTrain of the right neuron, the target replayed on the loop grid, and trains
Elephant can analyse (its van Rossum distance agrees with the project's)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import small_network, small_task

from superspike.errors import InputFileError, UserError
from superspike.io import read_spk, write_ras
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
