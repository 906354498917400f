"""Tasks that draw fresh trials (MODEL.md 3.6): a stream of segments made from (seed, k), fed
to both engines through one Feed, split at segment boundaries; checkpoints resume it exactly;
XOR is such a stream, scored on trials the network has not seen."""

from __future__ import annotations

import signal
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
from conftest import small_network, small_task
from test_fast_engine import _agree

from superspike.engine import State
from superspike.engine.fast import FastEngine
from superspike.engine.reference import ReferenceEngine
from superspike.errors import ConfigError, RunInterrupted
from superspike.params import steps
from superspike.run import train as train_module
from superspike.run.config import RunConfig
from superspike.run.schedule import Schedule
from superspike.run.train import train
from superspike.task.feed import Feed
from superspike.task.raster import Raster, Task
from superspike.task.windows import ErrorWindows, score_windows
from superspike.task.xor import XorParams, xor_task

DT = 1e-4
SHORT = XorParams(nin=30, trials_per_condition=1)  # 1.22 s segments of 3-4 trials


# -- the XOR stream ----------------------------------------------------------------------------


def _pattern(task: Task, dt: float = DT) -> dict[int, int]:
    """Latency (steps after onset) of each neuron of the reference group, the one firing in every
    trial: the offset at which it spikes in most trials (background spikes are rare)."""
    s = steps(task.input.times, dt)
    i = task.input.ids
    ref = np.array_split(np.arange(task.nin), 3)[0]
    onsets = steps(task.notes["onsets_s"] + 1e-9, dt)
    out = {}
    for n in ref:
        mine = s[i == n]
        offs = np.concatenate([mine[(mine >= o) & (mine < o + 100)] - o for o in onsets])
        out[int(n)] = int(np.bincount(offs).argmax())
    return out


def test_xor_segments_draw_fresh_trials_around_fixed_patterns() -> None:
    task = xor_task(7, DT)
    assert task.is_stream
    segs = [task.segment(k) for k in range(4)]
    period = steps(task.grid, DT)
    for a, b in pairwise(segs):
        assert steps(a.grid, DT) == steps(b.grid, DT) == period
        assert not np.array_equal(a.notes["onsets_s"], b.notes["onsets_s"])  # intervals
        assert not np.array_equal(a.input.times, b.input.times)  # background
    assert len({tuple(s.notes["conditions"][:12]) for s in segs}) == 4  # trial order
    pattern = _pattern(segs[0])
    for seg in segs[1:]:
        assert _pattern(seg) == pattern  # the input patterns stay fixed per seed
        # every trial: the reference group fires its pattern at the onset
        s, i = steps(seg.input.times, DT), seg.input.ids
        events = set(zip(s.tolist(), i.tolist(), strict=True))
        for onset in steps(seg.notes["onsets_s"] + 1e-9, DT):
            assert all((onset + lat, n) in events for n, lat in pattern.items())
    assert _pattern(xor_task(8, DT)) != pattern  # another seed, other patterns
    # the four conditions equally often (to within one) in each segment, intervals 200-400 ms
    for seg in segs:
        counts = np.bincount(seg.notes["conditions"], minlength=4)
        assert counts.max() - counts.min() <= 1
        gaps = np.diff(seg.notes["onsets_s"])
        assert gaps.min() >= 0.2 - 1e-9 and gaps.max() <= 0.4 + 1e-9
        assert seg.notes["onsets_s"][0] == pytest.approx(0.02)
        # across the boundary to the next segment's first trial (20 ms in): 200-600 ms
        tail = seg.grid - seg.notes["onsets_s"][-1] + 0.02
        assert 0.2 - 1e-9 <= tail <= 0.6


def test_a_segment_is_made_again_identically_from_seed_and_number() -> None:
    a, b = xor_task(3, DT), xor_task(3, DT)
    later = [b.segment(k) for k in (5, 2, 9)]  # any order
    for k, seg in zip((5, 2, 9), later, strict=True):
        again = a.segment(k)
        np.testing.assert_array_equal(seg.input.times, again.input.times)
        np.testing.assert_array_equal(seg.input.ids, again.input.ids)
        np.testing.assert_array_equal(seg.windows.starts, again.windows.starts)
        np.testing.assert_array_equal(seg.windows.ids, again.windows.ids)
    np.testing.assert_array_equal(a.segment(0).input.times, a.input.times)  # the task is segment 0


def test_feed_reads_across_segments() -> None:
    task = xor_task(2, DT, SHORT)
    feed = Feed(task, DT, margin=8)
    p = feed.period
    s, i = feed.input_events(p - 500, p + 500)
    assert np.all(np.diff(s) >= 0)
    for k, lo, hi in ((0, p - 500, p), (1, p, p + 500)):
        seg = task.segment(k).input
        want = steps(seg.times, DT) + k * p
        m, w = (want >= lo) & (want < hi), (s >= lo) & (s < hi)
        assert m.sum() > 0
        np.testing.assert_array_equal(s[w], want[m])
        np.testing.assert_array_equal(i[w], seg.ids[m])
    a, _, _ = feed.windows(0, 3 * p)
    assert len(a) == sum(len(task.segment(k).notes["onsets_s"]) for k in range(3))
    np.testing.assert_array_equal(a[a >= 2 * p] - 2 * p, task.segment(2).windows.steps(task.grid, DT)[0])
    assert len(feed._kept) <= 3  # a few compiled segments are kept, not all


# -- margins --------------------------------------------------------------------------------------


def _stream(bad: str) -> Task:
    """A 1 s stream of 20 inputs -> 2 outputs; segment 2 breaks the margin rule as ``bad`` says."""
    base = small_task(nin=20, nout=2, grid=1.0)

    def seg(k: int) -> Task:
        t_tg, ids, win = np.array([0.5]), np.array([0]), None
        if k == 2 and bad == "target-start":
            t_tg = np.array([0.00025])  # step 2 of 10000
        if k == 2 and bad == "target-end":
            t_tg = np.array([0.99995])
        if bad.startswith("window"):
            stop = 1.0 if (k == 2 and bad == "window-end") else 0.6
            win = ErrorWindows([0.4], [stop], [0], 2)
        grid = 0.9 if (k == 2 and bad == "grid") else 1.0
        return Task(base.input, Raster(t_tg, ids, 2), grid, "probe", windows=win, stream=seg)

    return seg(0)


@pytest.mark.parametrize("bad", ["target-start", "target-end", "window-end", "grid"])
def test_segments_must_keep_their_margins(bad: str) -> None:
    task = _stream(bad)
    net = small_network(task, hidden=(4,))
    engine = ReferenceEngine(net, task)
    st = State.initial(net)
    engine.advance(st, 20_000)  # segments 0, 1 are fine
    with pytest.raises(ConfigError) as err:
        engine.advance(st, 100)  # into segment 2
    msg = str(err.value)
    assert "segment 2 of the probe task" in msg and "\n" not in msg
    assert ("grid" in msg) if bad == "grid" else ("first and last 8 steps" in msg)


def test_margins_are_not_asked_of_a_looped_task() -> None:
    """The loop replays one segment for ever: a target at its very end is fine (as before)."""
    base = small_task(nin=20, nout=2, grid=1.0)
    task = Task(base.input, Raster([0.00005, 0.99995], [0, 1], 2), 1.0, "loop")
    net = small_network(task, hidden=(4,))
    FastEngine(net, task).advance(State.initial(net), 25_000)


# -- engines --------------------------------------------------------------------------------------


def test_engines_agree_on_an_xor_stream_across_segment_boundaries() -> None:
    """Fast against reference over 9 updates (45001 steps): three segment boundaries, cut in the
    usual pieces; the output error reads each segment's windows."""
    task = xor_task(0, DT, SHORT)
    net = small_network(task, hidden=(6,), feedback="random", w0=0.5)
    fast = _agree(net, task, updates=9)
    assert fast.segment == 45_000 // steps(task.grid, DT) == 3


def test_a_stream_is_fed_segment_by_segment_whatever_the_cuts() -> None:
    """The same steps in one advance or in many pieces, cut anywhere, give the same state (the
    reference engine: per step, so any difference would be the feed's)."""
    task = xor_task(4, DT, SHORT)
    net = small_network(task, hidden=(5,), w0=0.5)
    p = steps(task.grid, DT)
    one, many = State.initial(net), State.initial(net)
    ReferenceEngine(net, task).advance(one, 3 * p + 77)
    engine = ReferenceEngine(net, task)
    for n in (p - 3, 6, 1, p, p + 73):
        engine.advance(many, n)
    assert many.clock == 3 * p + 77
    for name, x in one.to_arrays().items():
        np.testing.assert_array_equal(x, many.to_arrays()[name], err_msg=name)


@pytest.mark.parametrize("cls", [ReferenceEngine, FastEngine])
def test_engines_replay_the_current_segment(cls: type) -> None:
    """Input spikes and windows of opportunity come from the segment of the step: windows exist
    only in segment 1 here, and the input ring holds the feed's spikes after each boundary."""
    none = ErrorWindows(np.zeros(0), np.zeros(0), np.zeros(0, np.int64), 2)

    def seg(k: int) -> Task:
        rng = np.random.default_rng(k)
        t = (rng.integers(0, 10_000, 400) + 0.5) * DT
        inp = Raster(np.sort(t), rng.integers(0, 20, 400), 20)
        win = ErrorWindows([0.4], [0.6], [0], 2) if k == 1 else none
        return Task(inp, Raster([0.5], [0], 2), 1.0, "probe", windows=win, stream=seg)

    task = seg(0)
    net = small_network(task, hidden=(4,))
    engine, st = cls(net, task), State.initial(net)
    feed = Feed(task, DT)
    ring = st.groups["input"].hist
    for stop in (5_000, 15_000, 20_005, 25_000):
        engine.advance(st, stop - st.clock)
        assert (st.window_state[0] > 0) == (stop == 15_000), stop  # open only in segment 1
        for t in range(stop - 5, stop):
            want = np.zeros(20, np.int64)
            np.add.at(want, feed.input_events(t, t + 1)[1], 1)
            np.testing.assert_array_equal(ring[t % ring.shape[0]], want, err_msg=f"step {t}")


def test_a_looped_task_never_reloads() -> None:
    task = small_task(grid=0.2)
    net = small_network(task)
    for cls in (ReferenceEngine, FastEngine):
        engine = cls(net, task)
        engine._load = None  # a looped task must not swap anything in
        engine.advance(State.initial(net), 5 * 2000 + 3)
        assert engine.feed.pieces(0, 10_003) == [(0, 0, 10_003)]


# -- runs -----------------------------------------------------------------------------------------


def _cfg(engine: str) -> RunConfig:
    return RunConfig(
        task="xor", seed=3, burn_in=2.0, block_duration=10.0, blocks=3, test_periods=2, engine=engine, eta=5e-3
    )


def test_schedule_of_a_stream_ends_with_a_scored_test() -> None:
    s = Schedule.create(2.0, 10.0, 3, 12.02, DT, 1e-3, test_periods=2, test_line=True)
    assert s.end == 3 * s.period + 2 * s.period and s.test_start == 3 * s.period
    assert list(s.segments(1e-3))[-1] == (s.training_end, s.end, False, 0.0, 3, 4)
    loop = Schedule.create(2.0, 10.0, 3, 12.02, DT, 1e-3)  # a looped task: as before
    assert loop.end == 4 * loop.period and list(loop.segments(1e-3))[-1][-1] is None


def test_xor_run_scores_its_final_test_on_fresh_trials() -> None:
    cfg = _cfg("fast")
    result = train(cfg, quiet=True, record=True)
    rows = result.curve
    assert [r["block"] for r in rows] == [0, 1, 2, 3, 4] and rows[-1]["eta"] == 0.0
    task = xor_task(3, DT)
    feed = Feed(task, DT)
    sched = Schedule.create(2.0, 10.0, 3, task.grid, DT, 0.0, test_periods=2, test_line=True)
    s, i = result.spikes.spikes("output")
    lo, hi = sched.test_start, sched.end
    a, b, wid = feed.windows(lo, hi)
    assert len(a) >= 70 and a.min() >= 3 * feed.period  # two unseen segments of trials
    keep = (s >= lo) & (s < hi)
    assert rows[-1]["accuracy"] == pytest.approx(score_windows(a, b, wid, 2, s[keep], i[keep]))
    # a training line scores the trials of the loop period before it
    t1 = round(rows[2]["time_s"] / DT)
    a, b, wid = feed.windows(t1 - feed.period, t1)
    keep = (s >= t1 - feed.period) & (s < t1)
    assert rows[2]["accuracy"] == pytest.approx(score_windows(a, b, wid, 2, s[keep], i[keep]))
    # the recorded target is the stream's, segment by segment
    ts, _ = result.spikes.spikes("target")
    np.testing.assert_array_equal(ts, feed.target_events(0, hi)[0])


def _same_run(a: Path, b: Path) -> None:
    for name in ("input.spk", "hidden0.spk", "output.spk", "target.ras", "config.toml"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    cut = [[line.split("\t")[:-1] for line in (d / "learning_curve.tsv").read_text().splitlines()] for d in (a, b)]
    assert cut[0] == cut[1] and len(cut[0]) == 6  # all but the wall time; header + 5 lines
    wa, wb = np.load(a / "weights.npz"), np.load(b / "weights.npz")
    for k in wa.files:
        np.testing.assert_array_equal(wa[k], wb[k])


@pytest.mark.parametrize("engine", ["fast", "reference"])
def test_a_stream_resumes_bit_identically(engine: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM in the middle of segment 2 (t = 30.5 s, not a block end), then --resume: the run
    is the uninterrupted one, byte for byte (segments are made again from their number)."""
    whole = tmp_path / "whole"
    train(_cfg(engine), whole, quiet=True)
    run = tmp_path / "run"
    call = train_module._Tracker.__call__
    fired = []

    def stop_midway(self, start, stop, spikes, target):  # type: ignore[no-untyped-def]
        call(self, start, stop, spikes, target)
        if stop >= 305_000 and not fired:
            fired.append(stop)
            signal.raise_signal(signal.SIGTERM)

    monkeypatch.setattr(train_module._Tracker, "__call__", stop_midway)
    with pytest.raises(RunInterrupted):
        train(_cfg(engine), run, quiet=True)
    monkeypatch.setattr(train_module._Tracker, "__call__", call)
    assert not (run / "weights.npz").exists() and 2 * 120_200 < fired[0] < 3 * 120_200
    train(None, run, resume=True, quiet=True)
    _same_run(whole, run)


def test_test_periods_is_checked() -> None:
    from superspike.run.config import config_from_dict

    for bad, what in ((0, "1..10000"), (2.5, "integer")):
        with pytest.raises(ConfigError, match=what):
            config_from_dict({"test_periods": bad}, "run.toml")
    assert config_from_dict({"test_periods": 3}, "run.toml").get("test_periods") == 3
    assert RunConfig().get("test_periods") == 1  # looped tasks: one test period, as before
