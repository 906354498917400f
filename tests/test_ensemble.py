"""Ensembles (docs/SWEEPS.md, "Ensembles"): members advanced as one combined network give what
separate runs give, bit for bit; the engines agree on a combined graph; sweeps group compatible
points, say so and run the others alone; an interrupted ensemble resumes exactly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import tomllib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import small_network, small_task, small_task_files

from superspike.engine import ReferenceEngine, State
from superspike.engine.fast import FastEngine
from superspike.errors import ConfigError, RunInterrupted
from superspike.network import Network
from superspike.network.ensemble import combine
from superspike.outputs.rundir import read_curve_rows
from superspike.run.config import RunConfig, resolve
from superspike.run.ensemble import ensemble_key, group_points, train_ensemble
from superspike.run.sweep import run_sweep, sweep_from_dict
from superspike.run.train import build_network, train

SHORT = dict(hidden=(4,), burn_in=0.5, block_duration=0.5, blocks=2, w0=0.3)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return small_task_files(tmp_path_factory.mktemp("task"), nin=30, nout=2)


def _configs(files: tuple[Path, Path], members: list[tuple[int, float, str]], **kw: object) -> list[RunConfig]:
    inp, tgt = files
    base = {**SHORT, **kw}
    return [RunConfig(input=str(inp), target=str(tgt), seed=s, eta=e, feedback=f, **base) for s, e, f in members]


def _same_run(a: Path, b: Path) -> None:
    """Two run directories hold the same run: weights and spike files byte for byte, cost lines
    equal but for the wall time."""
    wa, wb = np.load(a / "weights.npz"), np.load(b / "weights.npz")
    assert wa.files == wb.files
    for k in wa.files:
        np.testing.assert_array_equal(wa[k], wb[k], err_msg=f"{a.name}: {k}")
    spk = sorted(p.name for p in a.glob("*.spk"))
    assert spk and spk == sorted(p.name for p in b.glob("*.spk"))
    for name in spk:
        assert (a / name).read_bytes() == (b / name).read_bytes(), f"{a.name}: {name}"
    ra, rb = read_curve_rows(a), read_curve_rows(b)
    assert len(ra) == len(rb) > 0
    for x, y in zip(ra, rb, strict=True):
        x.pop("wall_s"), y.pop("wall_s")
        assert x == y


@pytest.mark.parametrize(
    "members",
    [
        [(1, 1e-3, "random"), (2, 5e-3, "uniform"), (3, 1e-2, "random")],
        [(4, 1e-2, "symmetric"), (5, 2e-3, "symmetric")],
    ],
    ids=["fixed-feedback", "symmetric"],
)
def test_ensemble_equals_separate_runs(files, tmp_path: Path, members) -> None:
    cfgs = _configs(files, members)
    ens = train_ensemble(cfgs, [tmp_path / f"e{k}" for k in range(len(cfgs))])
    for k, cfg in enumerate(cfgs):
        alone = train(cfg, tmp_path / f"a{k}", quiet=True)
        for name, w in alone.network.weights.items():
            np.testing.assert_array_equal(ens[k].network.weights[name], w, err_msg=f"member {k}: {name}")
            assert not np.array_equal(w, build_network(resolve(cfg).config)[0].weights[name]), "weights moved"
        _same_run(tmp_path / f"a{k}", tmp_path / f"e{k}")
    # the members differ from each other (a member mixed up with another would show here)
    assert not np.array_equal(ens[0].network.weights["input-hidden0"], ens[1].network.weights["input-hidden0"])


def test_ensemble_members_keep_rmsprop_options(files, tmp_path: Path) -> None:
    """RMSprop with its own memory and bias correction (counted from the clock) in an ensemble."""
    kw = dict(optimizer="rmsprop", rms_tau=5.0, rms_bias_correction=True)
    cfgs = _configs(files, [(1, 5e-3, "random"), (2, 1e-2, "uniform")], **kw)
    ens = train_ensemble(cfgs, [tmp_path / f"e{k}" for k in range(len(cfgs))])
    plain = train(_configs(files, [(1, 5e-3, "random")], optimizer="rmsprop")[0], tmp_path / "p", quiet=True)
    assert not np.array_equal(plain.network.weights["input-hidden0"], ens[0].network.weights["input-hidden0"])
    for k, cfg in enumerate(cfgs):
        alone = train(cfg, tmp_path / f"a{k}", quiet=True)
        for name, w in alone.network.weights.items():
            np.testing.assert_array_equal(ens[k].network.weights[name], w, err_msg=f"member {k}: {name}")


def _mixed() -> tuple[list, list]:
    """Three small networks, members 0 and 2 on equal inputs (distinct objects), member 1 on another."""
    tasks = [small_task(nin=12, nout=2, seed=s, rate=30) for s in (1, 2, 1)]
    nets = [
        small_network(t, hidden=(5,), seed=s, w0=0.5, feedback="random") for s, t in zip((3, 4, 5), tasks, strict=True)
    ]
    return nets, tasks


def test_members_with_equal_input_share_its_groups() -> None:
    nets, tasks = _mixed()
    assert tasks[0].input is not tasks[2].input
    ens = combine(nets, tasks)
    spec = ens.network.spec
    assert ens.input_owners == [0, 1, 0]
    # layers stay neighbours, in member order; member 2 has no input group of its own
    assert [g.name for g in spec.groups] == [
        "m0.input", "m1.input", "m0.hidden0", "m1.hidden0", "m2.hidden0", "m0.output", "m1.output", "m2.output",
    ]  # fmt: skip
    conns = [(c.name, c.pre, c.post) for c in spec.connections]
    assert conns[:3] == [
        ("m0.input-hidden0", "m0.input", "m0.hidden0"),
        ("m1.input-hidden0", "m1.input", "m1.hidden0"),
        ("m2.input-hidden0", "m0.input", "m2.hidden0"),
    ]
    assert [c[0] for c in conns[3:]] == ["m0.hidden0-output", "m1.hidden0-output", "m2.hidden0-output"]
    assert ens.group_names(2) == {"input": "m0.input", "hidden0": "m2.hidden0", "output": "m2.output"}
    # the combined input raster holds each distinct input once, member 2 reads member 0's ids
    assert spec.nin == ens.task.input.n == 24
    assert len(ens.task.input.times) == len(tasks[0].input.times) + len(tasks[1].input.times)
    np.testing.assert_array_equal(ens.input_ids(2), np.arange(12))
    np.testing.assert_array_equal(ens.input_ids(1), 12 + np.arange(12))
    np.testing.assert_array_equal(ens.target_ids(2), [4, 5])
    # another input group name, or an input raster one spike apart, is not shared
    spec = nets[2].spec
    renamed = spec.replace(
        groups=tuple(g if g.lif else replace(g, name="src") for g in spec.groups),
        connections=tuple(replace(c, pre="src") if c.pre == "input" else c for c in spec.connections),
    )
    assert combine([*nets[:2], Network.initialize(renamed, 5, 0.5)], tasks).input_owners == [0, 1, 2]
    times = tasks[2].input.times.copy()
    times[3] += 1e-4
    tasks[2] = replace(tasks[2], input=replace(tasks[2].input, times=times))
    solo = combine(nets, tasks)
    assert solo.input_owners == [0, 1, 2] and len(solo.network.spec.input_groups) == 3
    assert solo.task.input.n == 36


def test_members_share_input_only_with_equal_input_states() -> None:
    """A state's input rings that differ from the owner's (at the same clock they should not):
    the member keeps its own input groups, in combine and in an ensemble's coordinator."""
    from superspike.run.ensemble import _Coordinator

    nets, tasks = _mixed()
    states = [State.initial(n) for n in nets]
    assert combine(nets, tasks, states).input_owners == [0, 1, 0]
    states[2].groups["input"].hist[1, 3] = 1
    assert combine(nets, tasks, states).input_owners == [0, 1, 2]

    def build(states: list[State]) -> _Coordinator:
        coord = _Coordinator(len(nets))
        joined: dict[int, object] = {}
        threads = [
            threading.Thread(target=lambda k=k: joined.setdefault(k, coord.join(k, nets[k], tasks[k], state=states[k])))
            for k in range(len(nets))
        ]  # fmt: skip
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert coord.error is None and len(joined) == len(nets)
        return coord

    coord = build(states)
    assert coord.ensemble.input_owners == [0, 1, 2] and len(coord.ensemble.network.spec.input_groups) == 3
    assert coord.state.groups["m2.input"] is states[2].groups["input"]
    assert coord.members[2].groups["input"] is states[2].groups["input"]
    assert coord.members[2].state.groups["input"].hist[1, 3] == 1
    fresh = [State.initial(n) for n in nets]
    coord = build(fresh)
    assert coord.ensemble.input_owners == [0, 1, 0] and "m2.input" not in coord.state.groups
    assert coord.members[2].groups["input"] is fresh[0].groups["input"]  # the owner's


def test_engines_agree_on_an_ensemble_graph() -> None:
    """The reference engine on the combined graph gives each member's own reference run exactly,
    also to a member that reads another's input groups, and the fast engine agrees with it as
    on any graph."""
    nets, tasks = _mixed()
    ens = combine(nets, tasks)
    assert len(ens.network.spec.input_groups) == 2
    n = 3000
    ref, fast = State.initial(ens.network), State.initial(ens.network)
    ReferenceEngine(ens.network, ens.task).advance(ref, n)
    FastEngine(ens.network, ens.task).advance(fast, n)
    spikes = 0
    for m, (net, task) in enumerate(zip(nets, tasks, strict=True)):
        alone = State.initial(net)
        res = ReferenceEngine(net, task).advance(alone, n)
        spikes += sum(len(s) for s, _ in res.spikes.values())
        for name, gs in alone.groups.items():
            g = ref.groups[ens.group_names(m)[name]]
            for f in ("u", "i_syn", "err", "tr_err_flt", "avg", "hist"):
                if getattr(gs, f) is not None:
                    np.testing.assert_array_equal(getattr(g, f), getattr(gs, f), err_msg=f"member {m} {name}.{f}")
        for name, cs in alone.conns.items():
            np.testing.assert_array_equal(ref.conns[f"m{m}.{name}"].el_sum, cs.el_sum, err_msg=f"member {m} {name}")
    for name, gs in ref.groups.items():
        if gs.u is not None:
            np.testing.assert_array_equal(fast.groups[name].u, gs.u, err_msg=name)
    for name, cs in ref.conns.items():
        x, y = cs.el_sum, fast.conns[name].el_sum
        np.testing.assert_allclose(y, x, rtol=1e-4, atol=1e-4 * float(np.abs(x).max()), err_msg=name)
    assert spikes > 10, "the members should fire"


#: a built-in task whose seed draws the frozen input (as well as the weights and feedback)
TIMING = dict(task="timing-hidden", hidden=(4,), burn_in=0.5, block_duration=0.5, blocks=2)


def test_mixed_ensemble_equals_separate_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Members 0 and 2 (seed 1) share their input groups, member 1 (seed 2) has its own: every
    member's run equals its run alone, bit for bit."""
    import superspike.run.ensemble as run_ensemble

    made = []

    def spy(*args, **kw):
        made.append(combine(*args, **kw))
        return made[-1]

    monkeypatch.setattr(run_ensemble, "combine", spy)
    members = [(1, 5e-3, "random"), (2, 1e-2, "uniform"), (1, 1e-2, "uniform")]
    cfgs = [RunConfig(seed=s, eta=e, feedback=f, **TIMING) for s, e, f in members]
    ens = train_ensemble(cfgs, [tmp_path / f"e{k}" for k in range(len(cfgs))])
    assert [e.input_owners for e in made] == [[0, 1, 0]]
    assert len(made[0].network.spec.input_groups) == 2
    for k, cfg in enumerate(cfgs):
        alone = train(cfg, tmp_path / f"a{k}", quiet=True)
        for name, w in alone.network.weights.items():
            np.testing.assert_array_equal(ens[k].network.weights[name], w, err_msg=f"member {k}: {name}")
        _same_run(tmp_path / f"a{k}", tmp_path / f"e{k}")
    assert not np.array_equal(ens[0].network.weights["input-hidden0"], ens[2].network.weights["input-hidden0"])


def test_points_with_equal_input_are_grouped_together(tmp_path: Path) -> None:
    from superspike.run.sweep import _ensemble_groups

    points = [(1, 1e-3), (2, 1e-3), (1, 5e-3), (2, 5e-3), (3, 1e-3)]
    cfgs = [RunConfig(seed=s, eta=e, **TIMING) for s, e in points]
    assert group_points(cfgs) == [[0, 2, 1, 3, 4]]
    assert group_points(cfgs, limit=2) == [[0, 2], [1, 3], [4]]
    # a sweep's points (seed = input) keep their names in their groups
    sw = sweep_from_dict(
        {"seeds": 3, "base": {**TIMING, "hidden": [4]}, "grid": {"eta": [1e-3, 5e-3]}}, tmp_path / "s.toml"
    )
    groups = _ensemble_groups(list(sw.points), sw.source, 2, 1)
    assert sorted(p.name for g in groups for p in g) == sorted(p.name for p in sw.points)
    assert [[p.seed for p in g] for g in groups] == [[1, 1], [2, 2], [3, 3]]


def test_incompatible_members_are_refused(files) -> None:
    with pytest.raises(ConfigError, match="ensemble"):
        train_ensemble(_configs(files, [(1, 1e-3, "symmetric"), (2, 1e-3, "random")]))
    ref = _configs(files, [(1, 1e-3, "symmetric")], engine="reference")[0]
    assert ensemble_key(ref) is None  # the reference engine runs alone
    cfgs = _configs(files, [(1, 1e-3, "symmetric"), (2, 1e-3, "random"), (3, 1e-3, "uniform"), (4, 1e-3, "symmetric")])
    assert group_points([*cfgs, ref]) == [[0, 3], [1, 2], [4]]
    assert group_points(cfgs * 3, limit=2) == [[0, 3], [4, 7], [8, 11], [1, 2], [5, 6], [9, 10]]
    # a stream of fresh segments runs alone; combining one is refused
    from superspike.network import NetworkSpec
    from superspike.task import get_task

    xor = RunConfig(task="xor", blocks=1, block_duration=1.0, burn_in=0.0)
    assert ensemble_key(xor) is None
    xor_task = get_task("xor").make(1, 1e-4)
    stream = replace(xor_task, windows=None)
    net = Network.initialize(NetworkSpec.chain(stream.nin, (4,), stream.nout), 1)
    with pytest.raises(ConfigError, match="stream"):
        combine([net, net], [stream, stream])


def test_sweep_groups_points_and_says_so(files, tmp_path: Path) -> None:
    inp, tgt = files
    data = {
        "seeds": 2,
        "base": {
            "input": str(inp),
            "target": str(tgt),
            "hidden": [4],
            "burn_in": 0.5,
            "block_duration": 0.5,
            "blocks": 2,
            "w0": 0.3,
        },
        "grid": {"feedback": ["symmetric", "random", "uniform"], "engine": ["fast", "reference"]},
    }
    sw = sweep_from_dict(data, tmp_path / "s.toml")
    seen = []
    res = run_sweep(sw, tmp_path / "ens", workers=2, progress=lambda p: seen.append(p.grouping()))
    assert res.progress.ok == 12
    # fast: 2 symmetric, 4 random or uniform (two workers: 2 + 2); reference: alone
    assert seen[0] == "grouped 6 points into 3 ensembles of 2 (advanced together); 6 alone"
    res = run_sweep(sw, tmp_path / "alone", workers=2, ensembles=False, progress=lambda p: seen.append(p.grouping()))
    assert res.progress.ok == 12 and seen[-1] == ""
    for p in sw.points:
        _same_run(tmp_path / "alone" / "runs" / p.name, tmp_path / "ens" / "runs" / p.name)


def test_interrupted_ensemble_resumes_exactly(files, tmp_path: Path) -> None:
    cfgs = _configs(files, [(1, 5e-3, "symmetric"), (2, 1e-2, "symmetric")], blocks=8)
    outs = [tmp_path / f"e{k}" for k in range(2)]

    def stop_after_two_lines() -> None:  # SIGTERM once member 0 has written two cost lines
        for _ in range(24000):  # up to 2 min: a cold numba cache compiles the kernels first
            if (outs[0] / "learning_curve.tsv").exists() and len(read_curve_rows(outs[0])) >= 2:
                os.kill(os.getpid(), signal.SIGTERM)
                return
            time.sleep(0.005)

    watcher = threading.Thread(target=stop_after_two_lines)
    watcher.start()
    with pytest.raises(RunInterrupted):
        train_ensemble(cfgs, outs, checkpoint_wall=0.0)
    watcher.join()
    assert not (outs[0] / "weights.npz").exists(), "stopped before the end"
    done = train_ensemble(cfgs, outs, resume=True)
    for k, cfg in enumerate(cfgs):
        alone = train(cfg, tmp_path / f"a{k}", quiet=True)
        for name, w in alone.network.weights.items():
            np.testing.assert_array_equal(done[k].network.weights[name], w, err_msg=f"member {k}: {name}")
        _same_run(tmp_path / f"a{k}", outs[k])


def test_stopped_ensemble_sweep_reruns_to_the_same_results(files, tmp_path: Path) -> None:
    """SIGTERM to `superspike sweep` while an ensemble runs: every member writes a checkpoint; the
    rerun continues them, and every run equals a sweep without ensembles."""
    inp, tgt = files
    path = tmp_path / "s.toml"
    path.write_text(
        f'seeds = 3\n[base]\ninput = "{inp}"\ntarget = "{tgt}"\nhidden = [4]\nburn_in = 0.5\n'
        "block_duration = 0.5\nblocks = 30\nw0 = 0.3\n[grid]\neta = [5e-3]\n"
    )
    out = tmp_path / "ens"
    cmd = [sys.executable, "-m", "superspike.cli", "sweep", str(path), "--out", str(out), "--workers", "1"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    first = out / "runs" / "eta=0.005_seed=1" / "learning_curve.tsv"
    deadline = time.monotonic() + 120
    while not (first.exists() and len(read_curve_rows(first.parent)) >= 3):
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "the ensemble wrote no cost lines in time"
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    err = proc.stderr.read()
    proc.stderr.close()
    assert "grouped 3 points into 1 ensemble of 3" in err
    runs = sorted((out / "runs").glob("eta=*"))
    assert len(runs) == 3 and all((r / "checkpoint.npz").exists() and not (r / "weights.npz").exists() for r in runs)
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    sw = sweep_from_dict(tomllib.loads(path.read_text()), path)
    assert run_sweep(sw, tmp_path / "alone", workers=1, ensembles=False).progress.ok == 3
    for r in runs:
        _same_run(tmp_path / "alone" / "runs" / r.name, r)


def test_batched_paths_equal_separate_runs(files, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The ensemble's state is flat (one array per field): the engine packs it and updates the
    synapses block by block, the members' optimisers step in one call; the results stay those of
    separate runs bit for bit (fails if a batched path is not taken or changes a bit)."""
    from superspike.engine import _fast_kernels as fk
    from superspike.run.ensemble import _Coordinator

    taken = {"update_all": 0, "synapse_block": 0}
    update_all, synapse_block = _Coordinator._update_all, fk.synapse_block

    def spy_update(self, *a):
        done = update_all(self, *a)
        taken["update_all"] += done is True
        return done

    def spy_block(*a):
        taken["synapse_block"] += 1
        return synapse_block(*a)

    monkeypatch.setattr(_Coordinator, "_update_all", spy_update)
    monkeypatch.setattr(fk, "synapse_block", spy_block)
    cfgs = _configs(files, [(7, 1e-2, "random"), (8, 3e-3, "uniform"), (9, 5e-3, "random")])
    ens = train_ensemble(cfgs, [tmp_path / f"e{k}" for k in range(len(cfgs))])
    assert taken["update_all"] > 0 and taken["synapse_block"] > 0, taken
    for k, cfg in enumerate(cfgs):
        alone = train(cfg, tmp_path / f"a{k}", quiet=True)
        for name, w in alone.network.weights.items():
            np.testing.assert_array_equal(ens[k].network.weights[name], w, err_msg=f"member {k}: {name}")
        _same_run(tmp_path / f"a{k}", tmp_path / f"e{k}")


def test_members_take_turns_running_their_python(files, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Between two meetings one member at a time runs its own Python (monitors, cost lines,
    files): a member that sleeps in its monitors (releasing the GIL) keeps the others out."""
    from superspike.run.ensemble import _Member

    feed = _Member._feed
    inside, most, calls = [0], [0], [0]
    lock = threading.Lock()

    def slow_feed(self, done):
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
            calls[0] += 1
        time.sleep(0.005)
        try:
            return feed(self, done)
        finally:
            with lock:
                inside[0] -= 1

    monkeypatch.setattr(_Member, "_feed", slow_feed)
    cfgs = _configs(files, [(1, 1e-3, "random"), (2, 5e-3, "uniform"), (3, 1e-2, "random")])
    train_ensemble(cfgs, [tmp_path / f"e{k}" for k in range(len(cfgs))])
    assert calls[0] >= 3 * 4, calls
    assert most[0] == 1, f"{most[0]} members ran their monitors at once"
