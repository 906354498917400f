"""Checkpoints and resume: an interrupted run (SIGTERM, SIGKILL at any moment) continues to
exactly the result of an uninterrupted one; a blow-up keeps the last good checkpoint."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import small_task_files

from superspike.cli import main
from superspike.engine import ReferenceEngine
from superspike.errors import SimulationError
from superspike.run.checkpoint import CHECKPOINT
from superspike.run.config import RunConfig
from superspike.run.train import train


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return small_task_files(tmp_path_factory.mktemp("task"))


def _args(files: tuple[Path, Path], out: Path, blocks: int = 120) -> list[str]:
    return [
        "train",
        "--input",
        str(files[0]),
        "--target",
        str(files[1]),
        "--hidden",
        "30",
        "--burn-in",
        "2",
        "--block-duration",
        "5",
        "--blocks",
        str(blocks),
        "--eta",
        "5e-3",
        "--w0",
        "0.2",
        "--out",
        str(out),
        "--quiet",
    ]


@pytest.fixture(scope="module")
def uninterrupted(files: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "whole"
    main(_args(files, out))
    return out


def _same_run(a: Path, b: Path) -> None:
    for name in ("input.spk", "hidden0.spk", "output.spk", "target.ras", "config.toml"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    strip = [[f for f in line.split("\t")[:-1]] for line in (a / "learning_curve.tsv").read_text().splitlines()]
    other = [[f for f in line.split("\t")[:-1]] for line in (b / "learning_curve.tsv").read_text().splitlines()]
    assert strip[0][-1] == "rate_output_hz" and strip == other  # all but the wall-time column
    wa, wb = np.load(a / "weights.npz"), np.load(b / "weights.npz")
    assert wa.files == wb.files
    for k in wa.files:
        np.testing.assert_array_equal(wa[k], wb[k])


def _start(files: tuple[Path, Path], out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "superspike.cli", *_args(files, out)], stderr=subprocess.PIPE, text=True
    )


def _wait_for_rows(out: Path, rows: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    t0 = time.time()
    curve = out / "learning_curve.tsv"
    while time.time() - t0 < timeout:
        if curve.exists() and len(curve.read_text().splitlines()) >= rows + 1:
            return
        if proc.poll() is not None:
            pytest.fail(f"the run ended early: {proc.stderr.read() if proc.stderr else ''}")
        time.sleep(0.02)
    pytest.fail("the run did not progress")


@pytest.mark.slow
def test_sigterm_writes_checkpoint_and_resume_is_identical(files, uninterrupted, tmp_path) -> None:
    out = tmp_path / "run"
    proc = _start(files, out)
    _wait_for_rows(out, 3, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM
    assert f"superspike train --resume {out}" in err and "Traceback" not in err
    assert (out / CHECKPOINT).exists() and not (out / "weights.npz").exists()
    main(["train", "--resume", str(out), "--quiet"])
    _same_run(uninterrupted, out)


@pytest.mark.slow
@pytest.mark.parametrize("rows", [0, 2, 5])
def test_sigkill_at_any_moment_then_resume_is_identical(files, uninterrupted, tmp_path, rows: int) -> None:
    out = tmp_path / "run"
    proc = _start(files, out)
    if rows:
        _wait_for_rows(out, rows, proc)
    else:
        while not (out / CHECKPOINT).exists():
            time.sleep(0.005)
    time.sleep(0.05 * rows)  # land between cost lines
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL and not (out / "weights.npz").exists(), "killed before the end"
    # no torn file: the checkpoint loads, spike files hold whole records
    with np.load(out / CHECKPOINT) as ck:
        assert int(ck["state/clock"]) >= 0 and "progress/curve_rows" in ck.files
    for spk in out.glob("*.spk"):
        assert spk.stat().st_size % 8 == 0
    main(["train", "--resume", str(out), "--quiet"])
    _same_run(uninterrupted, out)


def test_resume_of_finished_run_changes_nothing(uninterrupted, capsys) -> None:
    before = {p.name: p.read_bytes() for p in uninterrupted.iterdir()}
    main(["train", "--resume", str(uninterrupted)])
    assert "already complete" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in uninterrupted.iterdir()} == before


def test_resume_takes_no_other_options(uninterrupted, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["train", "--resume", str(uninterrupted), "--blocks", "3"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--blocks" in err


def test_existing_run_directory_is_refused(files, uninterrupted, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(_args(files, uninterrupted, blocks=1))
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--resume" in err and "--force" in err


def test_blow_up_names_block_and_keeps_last_good_checkpoint(files, tmp_path, monkeypatch, capsys) -> None:
    original = ReferenceEngine.advance

    def poisoned(self, state, n_steps):
        res = original(self, state, n_steps)
        if state.clock > 2.6 / 1e-4:  # during block 0 (it starts at 2 s): let it fail after 2 cost lines
            state.groups["hidden0"].u[0] = np.nan
        return res

    monkeypatch.setattr(ReferenceEngine, "advance", poisoned)
    out = tmp_path / "run"
    cfg = RunConfig(
        input=str(files[0]),
        target=str(files[1]),
        hidden=(30,),
        burn_in=2.0,
        block_duration=5.0,
        blocks=3,
        w0=0.2,
        engine="reference",
    )
    with pytest.raises(SimulationError, match=r"block 0; the last good checkpoint \(t = 2.0 s\) is kept"):
        train(cfg, out, quiet=True)
    assert not (out / "weights.npz").exists()
    with np.load(out / CHECKPOINT) as ck:
        assert int(ck["state/clock"]) == 20000 and np.isfinite(ck["state/group/hidden0/u"]).all()
        assert "state/conn/input-hidden0/el_sum" in ck.files and "progress/spk_hidden0" in ck.files
    with pytest.raises(SystemExit) as exc:
        main([*_args(files, tmp_path / "cli", blocks=3), "--engine", "reference"])
    assert exc.value.code == 3
    assert "numerical blow-up" in capsys.readouterr().err
