"""Shared test helpers: where ../shared is, small tasks and networks."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from superspike.network import Network, NetworkSpec
from superspike.task import Raster, Task

#: environment variable naming the shared folder (benchmark data, recorded reference run)
SHARED_ENV = "SUPERSPIKE_SHARED"
REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"

#: defines peak_kib() in a child program: its own peak memory in KiB (VmHWM in /proc/self/status,
#: ru_maxrss where there is none). ru_maxrss alone would count the pytest process the child was
#: forked from, which Linux keeps across exec: a bound could fail for the parent's memory, and a
#: growth measured from it could not fail at all.
PEAK_KIB = """
def peak_kib():
    import resource
    from pathlib import Path
    status = Path("/proc/self/status")
    text = status.read_text() if status.exists() else ""
    hwm = [line.split()[1] for line in text.splitlines() if line.startswith("VmHWM:")]
    return int(hwm[0]) if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
"""


def shared_dir() -> Path | None:
    """The project's shared folder: $SUPERSPIKE_SHARED if set, else ``../shared`` beside the
    repository; None if it is absent (it holds SPEC.md)."""
    given = os.environ.get(SHARED_ENV)
    cand = Path(given).expanduser() if given else REPO.parent / "shared"
    return cand if (cand / "SPEC.md").is_file() else None


def _absent_reason() -> str:
    given = os.environ.get(SHARED_ENV)
    where = (
        f"${SHARED_ENV} = {given}" if given else f"{REPO.parent / 'shared'} (set ${SHARED_ENV} to use another folder)"
    )
    return f"the shared folder (ssbm data, the recorded reference run) is not at {where}"


@pytest.fixture
def shared() -> Path:
    """The shared folder, or skip: these tests compare with the recorded reference run and ssbm data."""
    path = shared_dir()
    if path is None:
        pytest.skip(_absent_reason())
    return path


def small_task(nin: int = 20, nout: int = 3, grid: float = 0.2, seed: int = 0, rate: float = 20.0) -> Task:
    """A small frozen-Poisson task with a few target spikes per output."""
    rng = np.random.default_rng(seed)
    dt = 1e-4
    period = round(grid / dt)
    n_in = rng.poisson(rate * grid, nin)
    in_ids = np.repeat(np.arange(nin), n_in)
    in_t = (rng.integers(0, period, in_ids.size) + 0.5) * dt
    tg_ids = np.repeat(np.arange(nout), 3)
    tg_t = (rng.integers(0, period, tg_ids.size) + 0.5) * dt
    return Task(Raster(in_t, in_ids, nin), Raster(tg_t, tg_ids, nout), grid, "small")


def small_task_files(tmp: Path, nin: int = 40, nout: int = 4, seed: int = 0) -> tuple[Path, Path]:
    """A small task (0.25 s loop, 15 Hz inputs) written as ``tmp/in.ras`` and ``tmp/tg.ras``."""
    from superspike.io import write_ras

    task = small_task(nin=nin, nout=nout, grid=0.25, seed=seed, rate=15)
    inp, tgt = tmp / "in.ras", tmp / "tg.ras"
    write_ras(inp, task.input.times, task.input.ids)
    write_ras(tgt, task.target.times, task.target.ids)
    return inp, tgt


def small_network(task: Task, hidden: tuple[int, ...] = (8,), seed: int = 3, w0: float = 0.3, **kw) -> Network:
    """A small chain network for ``task`` with weights large enough to make neurons fire
    (``kw``: NetworkSpec.chain's, e.g. recurrent, fixed_hidden, feedback, regularizer)."""
    spec = NetworkSpec.chain(task.nin, hidden, task.nout, **kw)
    return Network.initialize(spec, seed, w0)


def one_line_error(capsys: pytest.CaptureFixture[str], argv: list, *needles: str) -> str:
    """Run the CLI on ``argv``; assert exit status 2 and a single ``error:`` line holding every needle."""
    from superspike.cli import main

    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    for needle in needles:
        assert needle in err, err
    return err


def measured_cli(
    args: list[str], cwd: Path, timeout: float = 120
) -> tuple[subprocess.CompletedProcess[str], float, int]:
    """Run the CLI on ``args`` in a fresh interpreter (this checkout's sources, a bare environment);
    its wall time and its own peak RSS (KiB, :data:`PEAK_KIB`)."""
    code = PEAK_KIB + textwrap.dedent(
        """
        import sys
        from superspike.cli import main
        try:
            main(sys.argv[1:])
        finally:
            print("peak", peak_kib(), file=sys.stdout)
        """
    )
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
        timeout=timeout,
    )
    wall = time.perf_counter() - t0
    peak = int(proc.stdout.split("peak")[-1])
    return proc, wall, peak
