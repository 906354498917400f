"""Built-in tasks: each learns in a shortened run, the XOR's window-of-opportunity error follows
its definition step by step, suggested settings sit below the config file and the options, and a
run's config.toml reruns a built-in task exactly."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from superspike.cli import main
from superspike.engine import ReferenceEngine, State
from superspike.engine.base import Engine
from superspike.errors import ConfigError
from superspike.network import Network, NetworkSpec
from superspike.outputs.rundir import read_curve
from superspike.run.config import RunConfig, load_config, network_spec, resolve
from superspike.run.train import train
from superspike.task import BUILTIN_TASKS, Raster, Task, get_task
from superspike.task.windows import ErrorWindows, window_accuracy

DT = 1e-4


def _run(name: str, **options: object) -> list[dict[str, float]]:
    """A shortened run of a built-in task: its suggested settings, then ``options``."""
    return train(RunConfig(task=name, **options), quiet=True).curve


def test_tasks_command_lists_every_task_on_one_line(capsys: pytest.CaptureFixture) -> None:
    main(["tasks"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in lines] == list(BUILTIN_TASKS)
    assert {"default", "timing", "timing-hidden", "xor", "auryn"} <= set(BUILTIN_TASKS)
    assert all(len(line) <= 120 for line in lines)


@pytest.mark.parametrize("name", ["default", "timing", "xor"])
def test_generated_tasks_are_fixed_by_the_seed(name: str) -> None:
    make = get_task(name).make
    a, b, c = make(1, DT), make(1, DT), make(2, DT)
    np.testing.assert_array_equal(a.input.times, b.input.times)
    np.testing.assert_array_equal(a.target.ids, b.target.ids)
    assert not np.array_equal(a.input.times, c.input.times)


def test_timing_task_is_the_papers_fig2() -> None:
    task = get_task("timing").make(1, DT)
    assert (task.nin, task.nout, task.grid) == (100, 1, 0.5)
    steps = np.floor(task.target.times / DT).astype(int)
    assert len(steps) == 5 and len(set(np.diff(steps))) <= 2 and abs(np.diff(steps).mean() - 5000 / 6) < 1
    assert 3.0 < len(task.input.times) / 100 / 0.5 < 7.0  # about 5 Hz


def test_xor_task_is_a_stream_of_the_papers_trials() -> None:
    """Fig. 5: 100 inputs, 2 outputs; 12.02 s segments of about 40 fresh trials, windows of 25 ms,
    4 Hz background; the task suggests a final test of 5 segments (about 200 unseen trials)."""
    builtin = get_task("xor")
    task = builtin.make(1, DT)
    assert (task.nin, task.nout, task.grid) == (100, 2, pytest.approx(12.02)) and task.is_stream
    assert builtin.suggested["test_periods"] == 5 and builtin.suggested["hidden"] == (4,)
    for k in (0, 1, 50):
        seg = task.segment(k)
        w = seg.windows.steps(seg.grid, DT)
        assert 36 <= len(w[0]) <= 44 and set(w[1] - w[0]) == {250}
        trial_spikes = len(w[0]) * (100 / 3) * 2  # about two of three groups fire per trial
        assert 3.0 < (len(seg.input.times) - trial_spikes) / 100 / seg.grid < 5.0  # about 4 Hz


def test_auryn_task_is_the_shipped_ssbm_benchmark() -> None:
    task = get_task("auryn").make(1, DT)
    assert (task.nin, task.nout, task.grid) == (100, 100, 3.5)
    assert (len(task.input.times), len(task.target.times)) == (1746, 1630)


# -- learning in shortened runs ----------------------------------------------------------------


def test_default_demo_learns_the_face() -> None:
    """9 s instead of 1020 s: the cost halves and the van Rossum distance falls 2.5-fold."""
    curve = _run("default", burn_in=1.0, block_duration=4.0, blocks=2)
    assert curve[-1]["cost"] < curve[0]["cost"] / 2
    assert curve[-1]["vr_distance"] < curve[0]["vr_distance"] / 2.5


def test_timing_single_neuron_learns() -> None:
    """Fig. 2 in 65 s: the cost falls at least fourfold (40 -> below 10)."""
    curve = _run("timing", blocks=6)
    assert curve[-1]["cost"] < curve[0]["cost"] / 4


@pytest.mark.parametrize("feedback", ["symmetric", "random", "uniform"])
def test_timing_through_hidden_units_learns_with_any_feedback(feedback: str) -> None:
    """Fig. 4 in 65 s: every feedback mode cuts the cost at least fourfold."""
    curve = _run("timing-hidden", blocks=6, feedback=feedback)
    assert curve[-1]["cost"] < curve[0]["cost"] / 4


@pytest.mark.parametrize("optimizer", ["rmsprop", "fixed"])
def test_timing_hidden_learns_with_other_optimizers(optimizer: str) -> None:
    """Fig. 1: the learning-rate strategies are selectable; each learns at a workable rate (for a
    fixed rate only a narrow band works here: 0.1, not 0.01 or 1)."""
    eta = {"rmsprop": 1e-3, "fixed": 0.1}[optimizer]
    curve = _run("timing-hidden", blocks=6, optimizer=optimizer, eta=eta)
    assert curve[-1]["cost"] < curve[0]["cost"] / 2


def test_xor_learns_above_chance_with_a_hidden_layer() -> None:
    """Fig. 5 in 160 s of training: accuracy goes from near 0 to above 0.9 (chance is 0.5) on
    fresh trials: the last line scores the final test's two unseen segments (about 80 trials)."""
    curve = _run("xor", burn_in=10.0, blocks=8, test_periods=2)
    assert all("accuracy" in row for row in curve)
    assert [row["block"] for row in curve] == list(range(10)) and curve[-1]["eta"] == 0.0
    assert curve[0]["accuracy"] < 0.5
    assert curve[-1]["accuracy"] > 0.9
    assert curve[-1]["cost"] < curve[0]["cost"] / 10


def test_xor_without_hidden_layer_stays_near_chance() -> None:
    """The paper's control: no hidden layer cannot solve XOR; on fresh trials it cannot
    memorise the noise either (a frozen loop let it reach 0.87)."""
    curve = _run("xor", burn_in=10.0, blocks=5, hidden=())
    assert max(row["accuracy"] for row in curve) < 0.7


@pytest.mark.slow
def test_auryn_pattern_is_learned() -> None:
    """Fig. 6 shortened to 60 s (of 1000 s): once the outputs fire, the cost falls 1.5-fold and
    the van Rossum distance falls below that of a silent output layer."""
    curve = _run("auryn", burn_in=3.5, block_duration=7.0, blocks=8)
    assert curve[-1]["cost"] < curve[1]["cost"] / 1.5
    assert curve[-1]["vr_distance"] < 0.9 * curve[0]["vr_distance"]


# -- the window-of-opportunity error -----------------------------------------------------------


def _driven_task(windows: ErrorWindows | None, period: int = 2000) -> Task:
    """One input neuron that fires at steps 100 and 1000; one output neuron it drives."""
    inp = Raster((np.array([100, 1000]) + 0.5) * DT, [0, 0], 1)
    return Task(inp, Raster([], [], 1), period * DT, "probe", windows=windows)


def _errors(task: Task, n_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Output error after every step, and the output spike steps."""
    net = Network(NetworkSpec.chain(1, (), 1), {"input-output": np.full((1, 1), 0.1, np.float32)}, {})
    eng = ReferenceEngine(net, task)
    st = State.initial(net)
    errs, spikes = [], []
    for _ in range(n_steps):
        spikes.extend(eng.advance(st, 1).spikes["output"][0])
        errs.append(float(st.groups["output"].err[0]))
    return np.array(errs), np.array(spikes)


def test_window_error_step_by_step() -> None:
    _, spikes = _errors(_driven_task(None), 2000)
    assert len(spikes) == 2  # one output spike after each input spike
    s1, s2 = (int(s) for s in spikes)
    delay = 8  # the error sees own spikes emitted 8 steps ago, like the target (SPEC 2.1, step 3)
    # window 1 holds the first output spike, window 2 (1500..1599) stays empty, spike 2 is outside
    win = ErrorWindows(np.array([s1 - 20, 1500]) * DT + DT / 2, np.array([s1 + 20, 1600]) * DT + DT / 2, [0, 0], 1)
    err, spikes2 = _errors(_driven_task(win), 4000)
    np.testing.assert_array_equal(spikes2, [s1, s2, s1 + 2000, s2 + 2000])
    expected = np.zeros(4000)
    for loop in (0, 2000):
        expected[loop + s2 + delay] = -1.0  # a wrong spike: negative error at once
        expected[loop + 1600 + delay] = 1.0  # a missed window: positive error at its end
    np.testing.assert_array_equal(err, expected)  # the hit window gives no error at all


def test_window_closing_at_the_loop_end_wraps() -> None:
    win = ErrorWindows([1800 * DT], [2000 * DT], [0], 1)
    err, _ = _errors(_driven_task(win), 4100)
    assert err[2000 + 8] == 1.0 and err[4000 + 8] == 1.0
    assert err[8] == 0.0  # no window has closed before the first one opens


def test_engine_without_window_support_refuses_the_task() -> None:
    class Plain(Engine):
        name = "plain"

    task = get_task("xor").make(1, DT)
    net = Network.initialize(NetworkSpec.chain(100, (4,), 2), 1)
    with pytest.raises(ConfigError, match="needs --engine reference"):
        Plain(net, task)


def test_window_definitions_are_checked() -> None:
    with pytest.raises(ConfigError, match="ends"):
        ErrorWindows([0.2], [0.1], [0], 1)
    with pytest.raises(ConfigError, match="overlap"):
        ErrorWindows([0.1, 0.15], [0.2, 0.3], [0, 0], 1).steps(1.0, DT)
    with pytest.raises(ConfigError, match="beyond the loop grid"):
        ErrorWindows([0.9], [1.2], [0], 1).steps(1.0, DT)
    with pytest.raises(ConfigError, match=r"0\.\.1"):
        ErrorWindows([0.1], [0.2], [2], 2)


def test_window_accuracy_scores_right_and_wrong_spikes() -> None:
    win = ErrorWindows(np.array([0.1, 0.3, 0.5]) + DT / 2, np.array([0.2, 0.4, 0.6]) + DT / 2, [0, 1, 0], 2)
    steps = np.array([1500, 3500, 3600, 5500])  # right, right, wrong neuron also fires, right
    ids = np.array([0, 1, 0, 0])
    assert window_accuracy(win, 1.0, DT, steps, ids, 0, 10_000) == pytest.approx(2 / 3)
    # the second loop period: windows replayed at +1 s, spikes only in the first one
    assert window_accuracy(win, 1.0, DT, steps + 10_000, ids, 10_000, 20_000) == pytest.approx(2 / 3)
    assert window_accuracy(win, 1.0, DT, steps, ids, 0, 4_000) == pytest.approx(0.5)  # only windows 0, 1
    assert math.isnan(window_accuracy(win, 1.0, DT, steps, ids, 0, 500))


# -- suggested settings and exact reruns -------------------------------------------------------


def test_suggestions_sit_below_the_config_file_and_the_options(tmp_path: Path) -> None:
    conf = tmp_path / "run.toml"
    conf.write_text('task = "timing-hidden"\nblock_duration = 1.0\n')
    out = tmp_path / "run"
    main(["train", "--config", str(conf), "--blocks", "1", "--burn-in", "0.5", "--out", str(out), "--quiet"])
    cfg = load_config(out / "config.toml")
    assert network_spec(cfg).hidden_sizes == (4,)  # suggested by the task
    assert cfg.block_duration == 1.0  # the file beats the suggestion (10 s)
    assert (cfg.blocks, cfg.burn_in) == (1, 0.5)  # the options beat both


@pytest.mark.parametrize("name", ["timing", "timing-hidden", "default"])
def test_python_api_resolves_like_the_command_line(tmp_path: Path, name: str) -> None:
    """One resolution for both: train(RunConfig(task=...)) runs what `superspike train --task ...`
    runs (the timing task: 305 s with its suggested 30 blocks of 10 s, not the 1020 s of the defaults)."""
    out = tmp_path / "cli"
    main(["train", "--task", name, "--blocks", "0", "--burn-in", "0.5", "--out", str(out), "--quiet"])
    from_cli = load_config(out / "config.toml")
    api = resolve(RunConfig(task=name, blocks=0, burn_in=0.5)).config
    assert from_cli == api
    full = resolve(RunConfig(task=name)).config
    suggested = get_task(name).suggested
    assert full.blocks == suggested.get("blocks", 50)
    assert full.block_duration == suggested.get("block_duration", 20.0)
    if name == "timing":
        from superspike.run.schedule import Schedule

        sched = Schedule.create(full.burn_in, full.block_duration, full.blocks, full.grid, 1e-4, full.eta)
        assert sched.training_end * 1e-4 == pytest.approx(305.0)


def test_explicit_default_values_beat_the_suggestions() -> None:
    """An option set to the default's value is still set: --blocks 50 on the timing task is 50 blocks."""
    assert resolve(RunConfig(task="timing", blocks=50)).config.blocks == 50
    assert resolve(RunConfig(task="timing")).config.blocks == 30
    cfg = resolve(RunConfig(task="timing-hidden", hidden=())).config
    assert [g.name for g in cfg.network.groups] == ["input", "output"]


def test_builtin_task_reruns_exactly_from_its_config(tmp_path: Path) -> None:
    first = tmp_path / "first"
    main(["train", "--task", "xor", "--blocks", "2", "--burn-in", "1", "--block-duration", "2",
          "--out", str(first), "--quiet"])  # fmt: skip
    again = tmp_path / "again"
    main(["train", "--config", str(first / "config.toml"), "--out", str(again), "--quiet"])
    a, b = read_curve(first), read_curve(again)
    assert "accuracy" in a
    for key in a:
        if key != "wall_s":
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert (first / "output.spk").read_bytes() == (again / "output.spk").read_bytes()
