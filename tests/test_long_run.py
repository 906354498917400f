"""A run of 10,000 simulated seconds works, and its memory does not grow with duration
(spikes are streamed to disk, nothing accumulates per block)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import measured_cli, small_task_files

from superspike.io import read_spk
from superspike.outputs.rundir import read_curve


def _run(tmp: Path, name: str, blocks: int) -> int:
    """Train in a child process; return the child's own peak resident memory (KiB)."""
    args = ["train", "--input", "in.ras", "--target", "tg.ras", "--hidden", "10", "--burn-in", "20"]
    args += ["--block-duration", "20", "--blocks", str(blocks), "--eta", "5e-3", "--w0", "0.2", "--quiet"]
    proc, _, peak = measured_cli([*args, "--out", name], tmp, timeout=3600)
    assert proc.returncode == 0, proc.stderr
    return peak


@pytest.mark.slow
def test_ten_thousand_seconds_with_flat_memory(tmp_path: Path) -> None:
    small_task_files(tmp_path)
    short = _run(tmp_path, "short", 24)  # 500 s
    long = _run(tmp_path, "long", 500)  # 10,020 s
    curve = read_curve(tmp_path / "long")
    assert curve["time_s"][-1] == 10_020 and len(curve["time_s"]) == 501
    steps, _ = read_spk(tmp_path / "long" / "output.spk", dt=1e-4)
    assert steps[-1] > 10_020 / 1e-4 - 2500, "spikes recorded to the end"
    assert long < short + 60_000, f"peak memory grew from {short} KiB (500 s) to {long} KiB (10,020 s)"
