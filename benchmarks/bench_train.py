"""The Oxford demo through ``superspike train`` against the reference engine, in one benchmark run.

    .venv/bin/python benchmarks/bench_train.py               # full schedule, 3 runs each (~5 min)
    .venv/bin/python benchmarks/bench_train.py --blocks 5    # shorter schedule, same figures

Measures, each in its own process:

- the reference engine's wall time per simulated second on the Oxford network (200-256-200,
  symmetric feedback, the recorded initial weights, learning on; ``--ref-seconds`` simulated);
- the whole Oxford demo through :func:`superspike.run.train.train` with a run directory (what
  ``superspike train --input ... --target ... --grid 1.89 --out DIR`` does: cost lines, spike
  files, checkpoints; symmetric feedback, default engine), and the same with random feedback and
  the regulariser, alternating, ``--repeat`` times each;

and prints the speed ratio (reference engine's time per simulated second over ``train``'s), the
random/symmetric ratio of the pairs run back to back, and where a run's time goes: the engine's
``advance``, the optimiser steps, and the rest (the run layer: task and network set-up, cost lines,
spike files, checkpoints, progress). The machine's load is printed with every figure. Needs
../shared (the Oxford data and the recorded weights), found next to the repository or through
``SUPERSPIKE_SHARED``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_fast import shared_dir  # the same data lookup (this script's folder is on sys.path)


def load() -> str:
    """The 1-minute load average."""
    return f"{os.getloadavg()[0]:.2f}"


def _oxford_files() -> tuple[Path, Path]:
    data = shared_dir() / "ssbm" / "benchmarks" / "precise_timing" / "oxford"
    return data / "input.ras", data / "target.ras"


# -- workers (each runs in its own process) ----------------------------------------------------


def work_reference(seconds: float) -> dict:
    """Wall time per simulated second of the reference engine on the Oxford network, learning on."""
    import numpy as np

    from superspike.network import Network, NetworkSpec
    from superspike.run.simulation import Simulation
    from superspike.task import Task, load_raster

    inp_path, tgt_path = _oxford_files()
    inp, _, _ = load_raster(inp_path, 200, role="input")
    tgt, _, _ = load_raster(tgt_path, 200, drop_out_of_range=True)
    task = Task(inp, tgt, 1.89, "oxford")
    ref = shared_dir() / "reference" / "oxford-burnin"
    spec = NetworkSpec.chain(200, (256,), 200)
    weights = {
        "input-hidden0": np.load(ref / "w_input_hidden.npy"),
        "hidden0-output": np.load(ref / "w_hidden_output.npy"),
    }
    sim = Simulation(Network(spec, weights, {}), task, engine="reference")
    sim.run_steps(2, learning=False)
    n = int(round(seconds / spec.neuron.dt))
    t0 = time.perf_counter()
    sim.run_steps(n, learning=True, eta=1e-3)
    wall = time.perf_counter() - t0
    return {"simulated_s": n * spec.neuron.dt, "wall_s": wall, "per_s": wall / (n * spec.neuron.dt), "load": load()}


def work_train(feedback: str, blocks: int) -> dict:
    """The Oxford demo through ``train`` with a run directory; engine and optimiser time measured
    by wrapping their entry points."""
    from superspike.engine.fast import FastEngine
    from superspike.optim.optimizers import Optimizer
    from superspike.run.config import RunConfig
    from superspike.run.train import train

    spent = {"engine": 0.0, "optimizer": 0.0}

    def timed(fn, key):
        def wrapper(*a, **kw):
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                spent[key] += time.perf_counter() - t

        return wrapper

    FastEngine.advance = timed(FastEngine.advance, "engine")
    Optimizer.step = timed(Optimizer.step, "optimizer")
    inp, tgt = _oxford_files()
    kw: dict = {"feedback": "symmetric"}
    if feedback == "random":
        kw = {"feedback": "random", "feedback_delay": 0.7e-3, "regularizer": True}
    cfg = RunConfig(
        input=str(inp), target=str(tgt), nout=200, drop_out_of_range=True, grid=1.89, hidden=(256,), blocks=blocks, **kw
    )
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        res = train(cfg, Path(tmp) / "run", quiet=True)
        wall = time.perf_counter() - t0
        sizes = sum(f.stat().st_size for f in (Path(tmp) / "run").rglob("*") if f.is_file())
    import resource

    simulated = 20.0 + 20.0 * blocks + 1.89  # burn-in, blocks, final loop (SPEC 3)
    return {
        "feedback": feedback,
        "wall_s": wall,
        "simulated_s": simulated,
        "engine_s": spent["engine"],
        "optimizer_s": spent["optimizer"],
        "final_cost": res.curve[-1].get("cost", float("nan")) if res.curve else float("nan"),
        "output_mb": sizes / 2**20,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "load": load(),
    }


# -- driver ----------------------------------------------------------------------------------


def spawn(*args: str) -> dict:
    """Run one worker in a fresh process and return its result."""
    cmd = [sys.executable, __file__, "--worker", *args]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _join(values, fmt: str = ".3g") -> str:
    return " ".join(v if isinstance(v, str) else format(v, fmt) for v in values)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--blocks", type=int, default=50, help="training blocks of 20 s (the demo: 50)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each feedback mode, alternating")
    ap.add_argument("--ref-seconds", type=float, default=2.0, help="simulated seconds of the reference engine")
    ap.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        kind, *rest = args.worker
        res = work_reference(float(rest[0])) if kind == "reference" else work_train(rest[0], int(rest[1]))
        print(json.dumps(res))
        return
    shared_dir()
    print(f"machine: {os.cpu_count()} CPUs, load average {load()} at start")
    spawn("train", "symmetric", "1")  # compile the kernels into numba's cache outside the timing
    refs, runs = [], {"symmetric": [], "random": []}
    for k in range(args.repeat):
        refs.append(spawn("reference", str(args.ref_seconds)))
        for fb in ("symmetric", "random") if k % 2 == 0 else ("random", "symmetric"):
            runs[fb].append(spawn("train", fb, str(args.blocks)))
    ref_per_s = statistics.median(r["per_s"] for r in refs)
    print(
        f"reference engine, Oxford 200-256-200 with learning: {ref_per_s:.3f} s wall per simulated second "
        f"(median of {len(refs)}: {_join(r['per_s'] for r in refs)}; load {_join(r['load'] for r in refs)})"
    )
    for fb, rs in runs.items():
        med = statistics.median(r["wall_s"] for r in rs)
        r = min(rs, key=lambda r: abs(r["wall_s"] - med))
        per_s = med / r["simulated_s"]
        engine, opt = r["engine_s"] / r["wall_s"], r["optimizer_s"] / r["wall_s"]
        print(
            f"train, {fb}{' + regulariser' if fb == 'random' else ''}: {r['simulated_s']:.1f} s simulated in "
            f"{med:.1f} s wall (median of {len(rs)}: {_join(x['wall_s'] for x in rs)}; "
            f"load {_join(x['load'] for x in rs)})\n"
            f"    {ref_per_s / per_s:.0f} x the reference engine's speed; {r['simulated_s'] / med:.1f} x real time; "
            f"final cost {r['final_cost']:.2f}; outputs {r['output_mb']:.1f} MB; peak memory {r['peak_mb']:.0f} MB\n"
            f"    time: engine {engine:.0%}, optimiser {opt:.0%}, run layer (set-up, cost lines, files, "
            f"checkpoints) {1 - engine - opt:.1%}"
        )
    pairs = [r["wall_s"] / s["wall_s"] for r, s in zip(runs["random"], runs["symmetric"], strict=True)]
    print(f"random + regulariser / symmetric: median {statistics.median(pairs):.2f} ({_join(pairs, '.2f')})")
    print(f"load average {load()} at end")


if __name__ == "__main__":
    main()
