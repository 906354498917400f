"""`superspike reproduce FIG`: the figures' sweep files, their statistics across seeds and the
figure, on tiny schedules (the full runs are documented commands, docs/REPRODUCTION.md)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import numpy as np
import pytest
from conftest import one_line_error

from superspike.errors import UserError
from superspike.outputs.sweep_plot import series_stats
from superspike.run.reproduce import (
    FIGURES,
    Series,
    figure_sweeps,
    figure_table,
    get_figure,
    reproduce,
    sweeps_folder,
)
from superspike.run.sweep import load_sweep, read_results

SWEEPS = Path(__file__).resolve().parents[1] / "sweeps"
PAPER_GRID = [10e-3, 5e-3, 1e-3, 0.5e-3, 0.1e-3]


def test_every_figure_has_its_sweep_files() -> None:
    assert sorted(FIGURES) == ["fig1", "fig2", "fig4", "fig5", "fig6", "fig7", "fig8"]
    assert sweeps_folder() == SWEEPS
    for fig in FIGURES.values():
        for stem in fig.sweeps:
            sweep = load_sweep(SWEEPS / f"{stem}.toml")
            assert sweep.points, stem
            text = (SWEEPS / f"{stem}.toml").read_text()
            # the file states its figure's solved criterion and how to run it
            if fig.measure == "final_accuracy":
                assert f"final_accuracy) at least {fig.solved_above:g}" in text, stem
            else:
                assert f"below {fig.solved_below:g}" in text, stem
            assert "superspike reproduce" in text, stem


def test_the_papers_trial_counts_and_grid() -> None:
    """20 trials for Figs. 1, 2 and 4; the learning-rate grid where the paper searched it."""
    for stem in ("fig1", "fig1_rmsprop", "fig1_fixed", "fig2", "fig4"):
        assert load_sweep(SWEEPS / f"{stem}.toml").seeds == tuple(range(1, 21)), stem
    assert load_sweep(SWEEPS / "fig4.toml").grid["eta"] == PAPER_GRID
    assert load_sweep(SWEEPS / "fig1.toml").grid == {"optimizer": ["rmaxprop", "rmsprop"], "eta": PAPER_GRID}
    assert load_sweep(SWEEPS / "fig1_rmsprop.toml").grid["eta"] == PAPER_GRID
    assert load_sweep(SWEEPS / "fig1_fixed.toml").grid["eta"] == pytest.approx([v * 100 for v in PAPER_GRID])
    base = load_sweep(SWEEPS / "fig1_rmsprop.toml").base
    assert (base["rms_tau"], base["rms_bias_correction"]) == (5.0, True)
    # Fig. 7's controls: no hidden layer, linear, fixed hidden, random + regulariser
    controls = {s: load_sweep(SWEEPS / f"{s}.toml").base for s in get_figure("7").sweeps if s.startswith("fig7_")}
    assert controls["fig7_nohidden"]["hidden"] == []
    assert controls["fig7_linear"]["linear"] is True
    assert controls["fig7_fixed"]["fixed_hidden"] is True
    assert controls["fig7_reg"]["regularizer"] is True and controls["fig7_reg"]["feedback"] == "random"


def test_seeds_override_and_figure_names() -> None:
    assert get_figure("4") is get_figure("fig4") is FIGURES["fig4"]
    sweeps = figure_sweeps(get_figure("fig1"), SWEEPS, seeds=2)
    assert [len(s.points) for s in sweeps] == [2 * 2 * 5, 2 * 5, 2 * 5]
    assert all(s.seeds == (1, 2) for s in sweeps)


def _fake_sweep(folder: Path, rows: list[tuple[str, str, str]]) -> Path:
    """A sweep directory with a results.csv of (feedback, status, final_cost) rows."""
    folder.mkdir(parents=True)
    (folder / "sweep.toml").write_text('seeds = [1]\n[base]\ntask = "timing"\n[grid]\nfeedback = ["a", "b"]\n')
    lines = ["run,feedback,seed,status,final_cost,final_vr_distance,rate_hidden_hz,rate_output_hz,wall_s,host,error"]
    for i, (fb, status, cost) in enumerate(rows):
        lines.append(f"r{i},{fb},{i + 1},{status},{cost},,,,1.0,h,{'boom' if status == 'failed' else ''}")
    (folder / "results.csv").write_text("\n".join(lines) + "\n")
    return folder


def test_statistics_across_seeds(tmp_path: Path) -> None:
    costs_a = [0.5, 2.0, 40.0, 1e-6, 0.9]
    rows = [("a", "ok", str(c)) for c in costs_a] + [("a", "failed", ""), ("b", "ok", "3.0")]
    folder = _fake_sweep(tmp_path / "s", rows)
    stats = {p.label: p for p in series_stats(Series("s", "fb={feedback}"), folder, None, 1.0)}
    a = stats["fb=a"]
    assert a.n == 6 and a.failed == 1
    assert a.solved == 3  # 0.5, 1e-6, 0.9; the failed run counts as not solved
    assert a.fraction_solved == pytest.approx(0.5)
    lo, q1, med, q3, hi = a.quantiles()
    assert (lo, med, hi) == (1e-6, 0.9, 40.0)
    assert (q1, q3) == (np.quantile(costs_a, 0.25), np.quantile(costs_a, 0.75))
    assert stats["fb=b"].solved == 0 and stats["fb=b"].n == 1
    only_b = series_stats(Series("s", "{feedback}", {"feedback": "b"}), folder, None, 1.0)
    assert [p.label for p in only_b] == ["b"]
    assert [p.label for p in series_stats(Series("s", ""), folder, None, 1.0)] == ["feedback=a", "feedback=b"]
    with pytest.raises(UserError, match="does not fit"):
        series_stats(Series("s", "{hidden}"), folder, None, 1.0)


def test_reproduce_runs_the_figures_sweep_and_draws_it(tmp_path: Path) -> None:
    """Fig. 2's own sweep file on a tiny schedule: its runs land in OUT/fig2, the figure in
    OUT/fig2.png; a second call runs nothing."""
    sweeps = tmp_path / "sweeps"
    sweeps.mkdir()
    text = (SWEEPS / "fig2.toml").read_text()
    text = re.sub(r"(?m)^blocks = \d+", "blocks = 2", text)
    text = re.sub(r"(?m)^block_duration = [\d.]+", "block_duration = 1.0", text)
    text = re.sub(r"(?m)^burn_in = [\d.]+", "burn_in = 0.5", text)
    (sweeps / "fig2.toml").write_text(text)
    assert tomllib.loads(text)["base"]["task"] == "timing"
    out = tmp_path / "results"
    results, png = reproduce("2", out, sweeps_dir=sweeps, seeds=2, workers=1)
    assert png == out / "fig2.png" and png.stat().st_size > 10_000
    _, rows = read_results(out / "fig2")
    assert [r["seed"] for r in rows] == [1, 2] and all(r["status"] == "ok" for r in rows)
    assert results[0].progress.ok == 2 and results[0].progress.skipped == 0
    results, _ = reproduce("fig2", out, sweeps_dir=sweeps, seeds=2, workers=1)
    assert results[0].progress.skipped == 2
    table = figure_table("fig2", out).splitlines()
    row = next(line for line in table if line.startswith("| 100-1"))
    costs = sorted(r["final_cost"] for r in rows)
    assert f"| 2 | {np.median(costs):.3g} |" in row
    assert f"| {sum(c < 1 for c in costs)} of 2 |" in row


def test_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    one_line_error(capsys, ["reproduce", "3"], "unknown figure", "1, 2, 4, 5, 6, 7, 8")
    one_line_error(capsys, ["reproduce", "fig5", "--sweeps", tmp_path], "fig5.toml", "no such sweep file")
    one_line_error(capsys, ["reproduce", "4", "--out", tmp_path, "--plot-only"], "no results.csv", "fig4.toml")


def test_xor_figure_counts_accuracy_on_fresh_trials(tmp_path: Path) -> None:
    """Fig. 5 draws the final-test accuracy: solved means at least 0.95 (higher is better)."""
    from superspike.network import NetworkSpec
    from superspike.run.sweep import _summarize

    fig = FIGURES["fig5"]
    assert fig.measure == "final_accuracy" and fig.sweeps == ["fig5", "fig5_nohidden"]
    folder = tmp_path / "x"
    folder.mkdir()
    (folder / "sweep.toml").write_text('seeds = [1]\n[base]\ntask = "xor"\n[grid]\nfeedback = ["a", "b"]\n')
    lines = ["run,feedback,seed,status,final_cost,final_accuracy,wall_s,host,error"]
    for i, (fb, acc) in enumerate([("a", 0.99), ("a", 0.95), ("a", 0.949), ("b", 0.5)]):
        lines.append(f"r{i},{fb},{i + 1},ok,1.0,{acc},1.0,h,")
    (folder / "results.csv").write_text("\n".join(lines) + "\n")
    stats = {p.label: p for p in series_stats(Series("x", "{feedback}"), folder, None, float("nan"), fig)}
    assert stats["a"].solved == 2 and stats["a"].n == 3 and stats["b"].solved == 0
    assert stats["a"].quantiles()[2] == pytest.approx(0.95)
    # a sweep's summary takes the last cost line's accuracy (a stream's final test)
    spec = NetworkSpec.chain(3, (2,), 2)
    curve = [{"cost": 2.0, "vr_distance": 1.0, "accuracy": 0.4}, {"cost": 1.0, "vr_distance": 1.0, "accuracy": 0.9}]
    assert _summarize(curve, spec)["final_accuracy"] == 0.9
    assert _summarize([{"cost": 1.0, "vr_distance": 1.0}], spec)["final_accuracy"] is None
