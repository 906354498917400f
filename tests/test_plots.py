"""Pictures of a run: the summary figure, the training GIF, the sweep dispatch, the progress bar."""

from __future__ import annotations

import io
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from superspike.cli import main
from superspike.outputs.animate import animate_run, frame_times
from superspike.outputs.plots import load_run, plot_run
from superspike.run.config import RunConfig
from superspike.run.train import train


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short run of the default task with a small hidden layer (2 s burn-in + 3 blocks of 1 s)."""
    out = tmp_path_factory.mktemp("plots") / "run"
    train(RunConfig(hidden=(32,), burn_in=2.0, block_duration=1.0, blocks=3), out, quiet=True)
    return out


def _image(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("L"), dtype=float)


def test_plot_draws_every_panel(run_dir: Path) -> None:
    out = plot_run(run_dir, run_dir / "fig.png", dpi=60)
    img = _image(out)
    assert img.shape[1] == 12 * 60 and img.shape[0] > 500  # 12 in wide, four rows of panels
    assert img.std() > 20  # not blank
    # the output raster of the last period holds spikes: dark pixels in the lower middle panel
    h, w = img.shape
    assert (img[int(0.78 * h) : int(0.95 * h), int(0.38 * w) : int(0.62 * w)] < 100).sum() > 100


def test_plot_and_animation_leave_pyplot_alone(run_dir: Path) -> None:
    """A notebook's or GUI's backend and its open figures stay as they were."""
    import matplotlib
    import matplotlib.pyplot as plt

    before = matplotlib.get_backend()
    matplotlib.use("svg")
    try:
        fig = plt.figure()
        plot_run(run_dir, run_dir / "own.png", dpi=40)
        animate_run(run_dir, run_dir / "own.gif", dpi=30, max_frames=2)
        assert matplotlib.get_backend() == "svg"
        assert plt.get_fignums() == [fig.number]
    finally:
        plt.close("all")
        matplotlib.use(before)


def test_plot_windows_are_the_first_and_last_loop_periods(run_dir: Path) -> None:
    run = load_run(run_dir)
    assert run.period == 10_000 and run.first_window == 0
    assert run.end == 60_000 and run.last_window == 50_000  # 2 + 3 s of training, then one more loop period
    s, i = run.spikes("output", run.last_window, run.end)
    assert len(s) > 0 and s.min() >= 50_000 and i.max() < 200


def test_plot_command_writes_png(run_dir: Path, capsys: pytest.CaptureFixture) -> None:
    main(["plot", str(run_dir), "--dpi", "40"])
    assert (run_dir / "plot.png").is_file()
    assert "plot.png" in capsys.readouterr().out


def test_plot_of_a_missing_run_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["plot", str(tmp_path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a run directory" in err


def test_plot_of_a_sweep_calls_the_sweep_figure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "results.csv").write_text("run,cost\n")
    calls = []
    fake = types.ModuleType("superspike.outputs.sweep_plot")
    fake.plot_sweep = lambda d, o, **kw: calls.append((Path(d), Path(o)))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "superspike.outputs.sweep_plot", fake)
    main(["plot", str(tmp_path), "--out", str(tmp_path / "s.png")])
    assert calls == [(tmp_path, tmp_path / "s.png")]


def test_plot_of_a_sweep_without_sweep_support_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    (tmp_path / "results.csv").write_text("run,cost\n")
    monkeypatch.setitem(sys.modules, "superspike.outputs.sweep_plot", None)  # import fails
    with pytest.raises(SystemExit) as exc:
        main(["plot", str(tmp_path)])
    assert exc.value.code == 2
    assert "sweep plots are not available" in capsys.readouterr().err


def test_animation_has_a_frame_per_cost_line(run_dir: Path) -> None:
    run = load_run(run_dir)
    frames = frame_times(run, 60)
    # cost lines at 2, 3, 4, 5 s show the periods before them; then the final period (5-6 s)
    assert [f[0] for f in frames] == [10_000, 20_000, 30_000, 40_000, 50_000]
    assert len(frame_times(run, 3)) == 3
    out = animate_run(run_dir, run_dir / "a.gif", dpi=40)
    with Image.open(out) as im:
        assert im.format == "GIF" and im.n_frames == 5
        im.seek(4)
        last = np.asarray(im.convert("L"), dtype=float)
        im.seek(0)
        first = np.asarray(im.convert("L"), dtype=float)
    assert np.abs(last - first).sum() > 0  # the output raster changes during training


def test_animate_command(run_dir: Path) -> None:
    main(["animate", str(run_dir), "--frames", "2", "--dpi", "30"])
    with Image.open(run_dir / "training.gif") as im:
        assert im.n_frames == 2


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


_SHORT = RunConfig(task="timing", hidden=(), burn_in=0.5, block_duration=1.0, blocks=2)


def test_progress_bar_shows_time_blocks_cost_and_speed(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _Tty()
    monkeypatch.setattr(sys, "stderr", fake)
    train(_SHORT)
    text = fake.getvalue()
    assert "simulated" in text and "3.0/3.0 s" in text  # simulated time
    assert "block=2" in text and "cost=" in text and "s/s" in text  # blocks, cost, speed


@pytest.mark.parametrize("tty, quiet", [(False, False), (True, True)])
def test_progress_bar_is_quiet_without_a_terminal_or_with_quiet(
    monkeypatch: pytest.MonkeyPatch, tty: bool, quiet: bool
) -> None:
    fake = _Tty() if tty else io.StringIO()
    monkeypatch.setattr(sys, "stderr", fake)
    train(_SHORT, quiet=quiet)
    assert fake.getvalue() == ""
