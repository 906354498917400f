"""Ensembles: the paper's Fig. 4 protocol through ``superspike sweep`` against the same runs one
after the other in one process, in the same benchmark run (docs/SWEEPS.md, "Ensembles").

    .venv/bin/python benchmarks/bench_sweep.py                 # 300 runs (20 seeds), ~15 min
    .venv/bin/python benchmarks/bench_sweep.py --seeds 4       # 60 runs, the same grid
    .venv/bin/python benchmarks/bench_sweep.py --profile 100   # where an ensemble's time goes

The protocol: sweeps/fig4.toml (timing-hidden task, 100-4-1, 5 s burn-in + 30 blocks of 10 s)
x feedback {symmetric, random, uniform} x eta {10, 5, 1, 0.5, 0.1} x 1e-3 x seeds. First every
point is trained with ``superspike.run.train.train`` one after the other in this process (run
directories written, as the sweep writes them), then the same points through
``run_sweep`` (ensembles on, its default workers). Prints both wall times, the speedup, the
largest weight difference between the two (every connection of every point; 0 means bit for
bit), the CPU seconds of both (the sweep's in all its processes: a figure that another job
on the machine changes less than the wall times) and the machine's load before and after;
``--plain`` also times the sweep without ensembles. ``--profile M`` instead advances one
ensemble of M symmetric Fig. 4 members for 20 simulated seconds in this process (its state
flat, as in a sweep) and prints where the engine's time goes; ``--threads 1`` as in a sweep
worker on 2 CPUs; ``--feedback random,uniform`` profiles those members instead of symmetric ones
(points seed by seed, as a sweep groups them).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ETAS = [10e-3, 5e-3, 1e-3, 0.5e-3, 0.1e-3]


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def cpu(who: int) -> float:
    """CPU seconds (user + system) of this process (RUSAGE_SELF) or its ended children."""
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def sweep_data(seeds: int) -> dict:
    import tomllib

    with open(ROOT / "sweeps" / "fig4.toml", "rb") as fh:
        data = tomllib.load(fh)
    data["seeds"] = seeds
    data["grid"]["eta"] = ETAS
    return data


def weights(path: Path) -> dict[str, np.ndarray]:
    with np.load(path / "weights.npz") as z:
        return {k: z[k] for k in z.files}


def compare(seq: Path, ens: Path, names: list[str]) -> tuple[float, int]:
    """Largest absolute weight difference over all points, and how many points differ at all."""
    worst, differ = 0.0, 0
    for name in names:
        a, b = weights(seq / name), weights(ens / name)
        assert a.keys() == b.keys(), name
        d = max(float(np.abs(a[k].astype(np.float64) - b[k]).max()) for k in a)
        worst = max(worst, d)
        differ += any(not np.array_equal(a[k], b[k]) for k in a)
    return worst, differ


def profile(members: int, seconds: float, threads: int | None = None, feedback: str = "symmetric") -> None:
    from superspike.engine.fast import FastEngine, flatten_state
    from superspike.network.ensemble import combine
    from superspike.run.config import config_from_dict, resolve
    from superspike.run.simulation import Simulation
    from superspike.run.sweep import sweep_from_dict
    from superspike.run.train import build_network

    # points of the given feedback modes, seed by seed (as a sweep groups them: members with one
    # seed share their input)
    modes = feedback.split(",")
    per_seed = len(ETAS) * len(modes)
    sw = sweep_from_dict(sweep_data(max(1, -(-members // per_seed))), ROOT / "sweeps" / "fig4.toml")
    pts = sorted((p for p in sw.points if p.params["feedback"] in modes), key=lambda p: p.config["seed"])[:members]
    members = len(pts)
    nets, tasks = [], []
    for p in pts:
        r = resolve(config_from_dict(p.config))
        nets.append(build_network(r.config, r.spec)[0])
        tasks.append(r.task)
    ens = combine(nets, tasks)
    one = Simulation(nets[0], tasks[0], engine=FastEngine(nets[0], tasks[0], threads=threads))
    sim = Simulation(ens.network, ens.task, engine=FastEngine(ens.network, ens.task, threads=threads))
    flatten_state(sim.state, sim.engine)  # as an ensemble's coordinator does
    for s in (one, sim):
        s.run(0.6)  # compile
        for k in s.engine.timing:
            s.engine.timing[k] = 0.0
    t = time.perf_counter()
    one.run(seconds)
    t_one = time.perf_counter() - t
    t = time.perf_counter()
    sim.run(seconds)
    t_ens = time.perf_counter() - t
    print(f"one network, {seconds:g} s simulated: {t_one:.3f} s wall; engine parts {_fmt(one.engine.timing)}")
    print(
        f"{members} networks as one: {t_ens:.3f} s wall ({t_ens / members:.4f} s per member); "
        f"parts {_fmt(sim.engine.timing)}"
    )
    print(f"engine time per member: {t_one / (t_ens / members):.1f}x less than alone")


def _fmt(t: dict) -> str:
    return ", ".join(f"{k} {v:.3f} s" for k, v in t.items())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=20, help="seeds per (feedback, eta) [20: the full protocol]")
    ap.add_argument("--workers", type=int, default=None, help="sweep workers [the sweep's default]")
    ap.add_argument("--profile", type=int, metavar="M", help="profile one ensemble of M members instead")
    ap.add_argument("--threads", type=int, help="--profile: engine threads [as the engine picks; a sweep worker: 1]")
    ap.add_argument("--feedback", default="symmetric", help="--profile: feedback modes, comma-separated [symmetric]")
    ap.add_argument("--keep", help="keep the run directories in this folder")
    ap.add_argument("--plain", action="store_true", help="also time the sweep without ensembles (--no-ensembles)")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    if args.profile:
        profile(args.profile, 20.0, args.threads, args.feedback)
        return
    from superspike.run.config import config_from_dict
    from superspike.run.sweep import RUNS, run_sweep, sweep_from_dict
    from superspike.run.train import train

    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_sweep_"))
    base.mkdir(parents=True, exist_ok=True)
    sw = sweep_from_dict(sweep_data(args.seeds), ROOT / "sweeps" / "fig4.toml")
    names = [p.name for p in sw.points]
    print(f"Fig. 4 protocol: {len(sw.points)} runs of 305 s simulated; load (1/5/15 min) {load()}", flush=True)
    # compile the kernels (numba cache) before either timing
    warm = sweep_data(1)
    warm["base"]["blocks"] = 1
    warm["base"]["block_duration"] = 1.0
    warm["base"]["burn_in"] = 0.5
    run_sweep(sweep_from_dict(warm, ROOT / "sweeps" / "fig4.toml"), base / "warm")
    seq = base / "sequential" / RUNS
    seq.mkdir(parents=True, exist_ok=True)
    t, c = time.perf_counter(), cpu(resource.RUSAGE_SELF)
    for p in sw.points:
        train(config_from_dict(p.config), seq / p.name, quiet=True)
    t_seq, c_seq = time.perf_counter() - t, cpu(resource.RUSAGE_SELF) - c
    print(
        f"one after the other, one process: {t_seq:.1f} s ({t_seq / len(names):.2f} s per run; "
        f"{c_seq:.1f} CPU s); load {load()}"
    )
    t, c = time.perf_counter(), cpu(resource.RUSAGE_CHILDREN) + cpu(resource.RUSAGE_SELF)
    res = run_sweep(sw, base / "ensembles", workers=args.workers)
    t_ens = time.perf_counter() - t
    c_ens = cpu(resource.RUSAGE_CHILDREN) + cpu(resource.RUSAGE_SELF) - c
    print(
        f"superspike sweep ({res.progress.grouping()}): {t_ens:.1f} s ({c_ens:.1f} CPU s in all its "
        f"processes: {c_seq / c_ens:.1f}x less); load {load()}"
    )
    worst, differ = compare(seq, base / "ensembles" / RUNS, names)
    print(
        f"speedup {t_seq / t_ens:.1f}x; largest weight difference {worst:.3g} ({differ} of {len(names)} points differ)"
    )
    if args.plain:
        t = time.perf_counter()
        run_sweep(sw, base / "plain", workers=args.workers, ensembles=False)
        t_plain = time.perf_counter() - t
        print(
            f"superspike sweep --no-ensembles: {t_plain:.1f} s ({t_seq / t_plain:.1f}x); "
            f"ensembles {t_plain / t_ens:.1f}x faster than that; load {load()}"
        )
    if not args.keep:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
