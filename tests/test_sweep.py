"""Sweeps: sweep files, local and Dask execution, results.csv, failures, kill and rerun, the figure."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from superspike.cli import main
from superspike.errors import ConfigError, UserError
from superspike.io import write_ras
from superspike.outputs.sweep_plot import choose_axes, plot_sweep
from superspike.run.sweep import RESULTS, STATUS, load_sweep, read_results, read_status, run_sweep

REPO = Path(__file__).resolve().parents[1]
SHORT = "burn_in = 0.5\nblock_duration = 0.5\nblocks = 2\nw0 = 0.3\n"


def _task_files(folder: Path) -> None:
    """A tiny task: 10 Poisson inputs (20 Hz), 2 outputs with 3 target spikes each, 0.5 s loop."""
    rng = np.random.default_rng(0)
    dt, grid = 1e-4, 0.5
    ids = np.repeat(np.arange(10), rng.poisson(20 * grid, 10))
    t = (rng.integers(0, int(grid / dt), ids.size) + 0.5) * dt
    write_ras(folder / "input.ras", t, ids, f"neurons 10, time grid {grid}s")
    tid = np.repeat(np.arange(2), 3)
    tt = (rng.integers(0, int(grid / dt), tid.size) + 0.5) * dt
    write_ras(folder / "target.ras", tt, tid, f"neurons 2, time grid {grid}s")


def _sweep_file(folder: Path, grid: str, seeds: str = "1", base: str = SHORT, name: str = "sweep.toml") -> Path:
    path = folder / name
    path.write_text(
        f'description = "tiny"\nseeds = {seeds}\n[base]\ninput = "input.ras"\ntarget = "target.ras"\n'
        f"{base}\n[grid]\n{grid}\n"
    )
    return path


GRID_2X2 = 'feedback = ["symmetric", "random"]\nhidden = [2, 3]'


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sweep")
    _task_files(path)
    return path


@pytest.fixture(scope="module")
def local_sweep(folder: Path) -> Path:
    """A 2 x 2 sweep (feedback x hidden size), one seed, run locally with two workers."""
    out = folder / "local"
    result = run_sweep(_sweep_file(folder, GRID_2X2), out, workers=2)
    assert result.progress.ok == 4 and result.progress.failed == 0
    return out


def _rows(out: Path) -> list[dict[str, str]]:
    with open(out / RESULTS, newline="") as fh:
        return list(csv.DictReader(fh))


# --- the sweep file ------------------------------------------------------------------------------


def test_points_names_and_paths(folder: Path) -> None:
    sweep = load_sweep(_sweep_file(folder, GRID_2X2 + "\nneuron.tau_mem = [0.01, 0.02]", seeds="[3, 7]"))
    assert len(sweep.points) == 2 * 2 * 2 * 2
    first = sweep.points[0]
    assert first.name == "feedback=symmetric_hidden=2_neuron.tau_mem=0.01_seed=3"
    assert first.config["hidden"] == [2] and first.config["neuron"] == {"tau_mem": 0.01}
    assert first.config["input"] == str(folder / "input.ras")  # relative to the sweep file
    assert [p.seed for p in sweep.points[:2]] == [3, 7]
    assert len({p.name for p in sweep.points}) == len(sweep.points)
    assert [p.seed for p in load_sweep(_sweep_file(folder, GRID_2X2, seeds="3")).points[:3]] == [1, 2, 3]


@pytest.mark.parametrize(
    ("grid", "seeds", "base", "message"),
    [
        ('feedback = ["symmetric", "sideways"]', "1", SHORT, "[grid] feedback[1] = 'sideways': feedback: must be one"),
        ("blocks = 2", "1", SHORT, "[grid] blocks: must be a non-empty list"),
        ("hiden = [2]", "1", SHORT, "hiden: unknown key"),
        ("eta = [1e-3]", "0", SHORT, "seeds: a count must be at least 1"),
        ("eta = [1e-3]", "1", SHORT + "seed = 4\n", "set seeds with the top-level key"),
        ("eta = [1e-3]", "1", SHORT + 'task = "nonesuch"\n', "give either a built-in task or input/target"),
        ("burn_in = [0.3]", "1", SHORT, "burn_in: must be a whole number of update intervals"),
        ("eta = [1e-3, 0.001]", "1", SHORT, "lists a value twice"),
    ],
)
def test_bad_sweep_files_name_file_and_key(folder: Path, grid: str, seeds: str, base: str, message: str) -> None:
    path = _sweep_file(folder, grid, seeds, base, name="bad.toml")
    with pytest.raises(ConfigError) as exc:
        load_sweep(path)
    assert str(path) in str(exc.value) and message in str(exc.value)
    assert "\n" not in str(exc.value)


def test_shipped_sweep_files() -> None:
    # the figures' files in full are checked in tests/test_reproduce.py
    counts = {"fig4": 3 * 5 * 20, "fig7b": 6 * 2 * 5, "fig8": 5 * 4 * 3, "recall": 2 * 2 * 10}
    for name, n in counts.items():
        sweep = load_sweep(REPO / "sweeps" / f"{name}.toml")  # validates every point, incl. the task name
        assert len(sweep.points) == n, name
    assert load_sweep(REPO / "sweeps" / "fig4.toml").grid["feedback"] == ["symmetric", "random", "uniform"]


# --- running -------------------------------------------------------------------------------------


def test_local_sweep_writes_table_and_run_directories(local_sweep: Path) -> None:
    rows = _rows(local_sweep)
    assert [r["run"] for r in rows] == [
        "feedback=symmetric_hidden=2_seed=1",
        "feedback=symmetric_hidden=3_seed=1",
        "feedback=random_hidden=2_seed=1",
        "feedback=random_hidden=3_seed=1",
    ]
    assert list(rows[0])[:4] == ["run", "feedback", "hidden", "seed"]
    for r in rows:
        assert r["status"] == "ok" and r["error"] == ""
        run = local_sweep / "runs" / r["run"]
        curve = np.genfromtxt(run / "learning_curve.tsv", names=True, delimiter="\t")
        assert float(r["final_cost"]) == pytest.approx(curve["cost"][-5:].mean(), rel=1e-5)
        assert float(r["rate_output_hz"]) == pytest.approx(curve["rate_output_hz"][-5:].mean(), rel=1e-5)
        assert float(r["rate_hidden_hz"]) == pytest.approx(curve["rate_hidden0_hz"][-5:].mean(), rel=1e-5)
        assert float(r["wall_s"]) > 0
        assert (run / "weights.npz").is_file() and read_status(run)["status"] == "ok"
    assert rows[0]["hidden"] == "[2]"
    keys, parsed = read_results(local_sweep)
    assert keys == ["feedback", "hidden"] and parsed[0]["hidden"] == [2] and parsed[0]["seed"] == 1


def test_rerun_of_a_finished_sweep_runs_nothing(folder: Path, local_sweep: Path) -> None:
    before = {p: p.stat().st_mtime_ns for p in local_sweep.glob(f"runs/*/{STATUS}")}
    result = run_sweep(folder / "sweep.toml", local_sweep, workers=2)
    assert result.progress.skipped == 4 and result.progress.ok == 4
    assert {p: p.stat().st_mtime_ns for p in local_sweep.glob(f"runs/*/{STATUS}")} == before
    assert len(_rows(local_sweep)) == 4


def test_changed_base_is_refused(folder: Path, local_sweep: Path) -> None:
    path = _sweep_file(folder, GRID_2X2, base=SHORT.replace("blocks = 2", "blocks = 3"), name="changed.toml")
    with pytest.raises(ConfigError, match=r"was run with blocks = 2, but .* now gives 3"):
        run_sweep(path, local_sweep)


def test_refuses_to_write_into_a_directory_that_is_not_a_sweep(folder: Path, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="is not a sweep directory"):
        run_sweep(_sweep_file(folder, GRID_2X2), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_failed_run_is_recorded_and_retried(folder: Path) -> None:
    # nout = 1 leaves the target's neuron 1 outside the output group: that run fails, the other runs
    path = _sweep_file(folder, "nout = [2, 1]", name="failing.toml")
    out = folder / "failing"
    result = run_sweep(path, out, workers=1)
    assert (result.progress.ok, result.progress.failed) == (1, 1)
    ok, bad = _rows(out)
    assert ok["status"] == "ok" and float(ok["final_cost"]) > 0
    assert bad["status"] == "failed" and "outside" in bad["error"] and bad["final_cost"] == ""
    ok_mtime = (out / "runs" / ok["run"] / STATUS).stat().st_mtime_ns
    again = run_sweep(path, out, workers=1)  # the failed run is tried again, the good one skipped
    assert (again.progress.skipped, again.progress.retried, again.progress.failed) == (1, 1, 1)
    assert (out / "runs" / ok["run"] / STATUS).stat().st_mtime_ns == ok_mtime
    assert [r["status"] for r in _rows(out)] == ["ok", "failed"]


GRAPH_BASE = SHORT + (
    '[[base.network.group]]\nname = "input"\nkind = "input"\n'
    '[[base.network.group]]\nname = "a"\nn = 3\n'
    '[[base.network.group]]\nname = "b"\nn = 2\n'
    '[[base.network.group]]\nname = "output"\ntarget = true\n'
    '[[base.network.connection]]\npre = "input"\npost = "a"\n'
    '[[base.network.connection]]\npre = "a"\npost = "b"\n'
    '[[base.network.connection]]\npre = "b"\npost = "output"\n'
    '[[base.network.connection]]\npre = "a"\npost = "output"\n'
)


def _graph_sweep_file(folder: Path, grid: str, name: str) -> Path:
    """A sweep whose [base] describes a graph (the tables after [base]'s keys, [grid] last)."""
    path = folder / name
    path.write_text(f'seeds = 1\n[base]\ninput = "input.ras"\ntarget = "target.ras"\n{GRAPH_BASE}\n[grid]\n{grid}\n')
    return path


def test_sweep_over_a_graph(folder: Path) -> None:
    """A [base.network] graph swept over feedback modes; hidden rates weighted by group size."""
    out = folder / "graph"
    result = run_sweep(_graph_sweep_file(folder, 'feedback = ["symmetric", "direct"]', "graph.toml"), out, workers=1)
    assert (result.progress.ok, result.progress.failed) == (2, 0)
    for r in _rows(out):
        run = out / "runs" / r["run"]
        curve = np.genfromtxt(run / "learning_curve.tsv", names=True, delimiter="\t")
        rate = (3 * curve["rate_a_hz"][-5:].mean() + 2 * curve["rate_b_hz"][-5:].mean()) / 5
        assert float(r["rate_hidden_hz"]) == pytest.approx(rate, rel=1e-5)
        with np.load(run / "weights.npz") as w:
            fixed = sorted(k for k in w.files if k.startswith("b/"))
        assert fixed == ([] if r["feedback"] == "symmetric" else ["b/output-a", "b/output-b"])
    # a chain key beside the graph is refused before anything runs
    with pytest.raises(ConfigError, match=r"\[grid\] hidden\[0\] = \[2\]: hidden: describes a chain, but the network"):
        load_sweep(_graph_sweep_file(folder, "hidden = [2]", "bad-graph.toml"))


def test_dask_local_cluster_gives_the_same_results(folder: Path, local_sweep: Path) -> None:
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        result = run_sweep(folder / "sweep.toml", folder / "dask", scheduler=cluster.scheduler_address)
    assert result.progress.ok == 4
    local = {r["run"]: r for r in _rows(local_sweep)}
    for r in _rows(folder / "dask"):
        assert r["status"] == "ok"
        assert r["final_cost"] == local[r["run"]]["final_cost"]  # a seed fixes everything, wherever it runs
        assert r["rate_hidden_hz"] == local[r["run"]]["rate_hidden_hz"]


def test_scheduler_without_dask_is_a_one_line_error(
    folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    with pytest.raises(UserError, match=r"pip install superspike\[dask\]"):
        run_sweep(_sweep_file(folder, GRID_2X2), folder / "no-dask", scheduler="tcp://127.0.0.1:8786")
    with pytest.raises(SystemExit) as exc:
        main(["sweep", str(folder / "sweep.toml"), "--out", str(folder / "no-dask"), "--scheduler", "tcp://x:1"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install superspike[dask]" in err
    assert not (folder / "no-dask").exists()


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as fh:
        return [int(c) for c in fh.read().split()]


@pytest.mark.parametrize(
    "sig, ensembles",
    [(signal.SIGTERM, False), (signal.SIGKILL, False), (signal.SIGKILL, True)],
    ids=["sigterm", "sigkill", "sigkill-ensembles"],
)
def test_killed_sweep_rerun_completes_only_what_is_missing(folder: Path, sig: signal.Signals, ensembles: bool) -> None:
    """Without ensembles a worker runs one point at a time; with them (here 2 ensembles of 2: the
    symmetric seeds and the random seeds) the unit a killed sweep's worker still finishes is a whole
    ensemble. Either way the rerun runs exactly what is missing."""
    if sig == signal.SIGKILL and not Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").exists():
        pytest.skip("needs Linux /proc/PID/task/PID/children to find the sweep's worker processes")
    # runs long enough (20.5 s simulated) that the kill lands part-way through the sweep
    base = SHORT.replace("blocks = 2", "blocks = 40")
    path = _sweep_file(folder, 'feedback = ["symmetric", "random"]', seeds="2", base=base, name="kill.toml")
    out = folder / f"kill-{sig.name}{'-ensembles' if ensembles else ''}"
    cmd = [sys.executable, "-m", "superspike.cli", "sweep", str(path), "--out", str(out), "--workers", "1"]
    cmd.append("--ensembles" if ensembles else "--no-ensembles")
    unit = 2 if ensembles else 1
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not ((out / RESULTS).exists() and len(_rows(out)) >= 1):
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "no run finished in time"
        time.sleep(0.05)
    seen = len(_rows(out))
    workers = _children(proc.pid) if sig == signal.SIGKILL else []
    proc.send_signal(sig)
    code = proc.wait(timeout=60)
    if sig == signal.SIGTERM:  # the sweep stops its runs (each writes a checkpoint) and says so
        assert code == 128 + signal.SIGTERM
    else:  # nothing can run in the sweep itself; its workers stop after their run
        assert code == -signal.SIGKILL
        while any(
            Path(f"/proc/{w}").exists() and "zombie" not in Path(f"/proc/{w}/status").read_text() for w in workers
        ):
            assert time.monotonic() < deadline + 60, "the killed sweep left workers running"
            time.sleep(0.1)
    err = proc.stderr.read()  # after the workers are gone: they hold the pipe too
    proc.stderr.close()
    if sig == signal.SIGTERM:
        assert "sweep stopped" in err
    marks = {p.parent.name: p.stat().st_mtime_ns for p in out.glob(f"runs/*/{STATUS}")}
    curves = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("runs/*/learning_curve.tsv")}
    # no new run (or ensemble) began after the kill: at most the one in flight finished
    assert seen <= len(marks) <= (-(-seen // unit) + 1) * unit
    if ensembles:  # whole ensembles: for each feedback mode both seeds or neither
        assert "grouped 4 points into 2 ensembles of 2" in err
        for mode in ("symmetric", "random"):
            assert len({f"feedback={mode}_seed=1", f"feedback={mode}_seed=2"} & set(marks)) in (0, 2)
    else:
        assert len(marks) < 4
    assert all(read_status(out / "runs" / name)["status"] == "ok" for name in marks)

    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"4 runs: {len(marks)} already done, {4 - len(marks)} to run" in rerun.stderr
    rows = _rows(out)
    assert len(rows) == 4 and all(r["status"] == "ok" for r in rows)
    for name in marks:  # finished runs untouched
        assert (out / "runs" / name / STATUS).stat().st_mtime_ns == marks[name]
        assert (out / "runs" / name / "learning_curve.tsv").stat().st_mtime_ns == curves[name]
    for r in rows:
        curve = np.genfromtxt(out / "runs" / r["run"] / "learning_curve.tsv", names=True, delimiter="\t")
        assert curve["block"].tolist() == list(range(41))  # complete, no line twice
    for other in folder.glob("kill-SIG*"):  # interrupted at other moments, resumed: the same results
        if other != out and (other / RESULTS).exists():
            assert sorted((r["run"], r["final_cost"]) for r in _rows(other)) == sorted(
                (r["run"], r["final_cost"]) for r in rows
            )


# --- the figure ----------------------------------------------------------------------------------


def test_choose_axes() -> None:
    rows = [{"feedback": f, "hidden": [h], "eta": 1e-3} for f in ("symmetric", "random") for h in (2, 4, 8)]
    assert choose_axes(["feedback", "hidden", "eta"], rows) == ("hidden", ["feedback"])
    assert choose_axes(["feedback", "hidden", "eta"], rows, x="feedback") == ("feedback", ["hidden"])
    assert choose_axes(["feedback"], [{"feedback": "a"}, {"feedback": "b"}]) == ("feedback", [])
    with pytest.raises(UserError, match="not a grid key"):
        choose_axes(["feedback"], rows, x="rho")


def test_plot_sweep(local_sweep: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    png = plot_sweep(local_sweep, tmp_path / "sweep.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    main(["plot", str(local_sweep)])  # `superspike plot DIR` dispatches on results.csv
    assert (local_sweep / "sweep.png").is_file()
    os.remove(local_sweep / "sweep.png")
    assert "sweep.png" in capsys.readouterr().out
