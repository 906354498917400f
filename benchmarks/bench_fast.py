"""Speed of the fast engine (SPEC 5) on the Oxford demo and across network sizes.

    .venv/bin/python benchmarks/bench_fast.py            # everything (a few minutes)
    .venv/bin/python benchmarks/bench_fast.py --quick    # shorter runs, same figures
    .venv/bin/python benchmarks/bench_fast.py --recurrent --skip-scale  # also a recurrent network

Prints: the machine's float32 GEMM throughput; the full Oxford demo (200-256-200, 20 s burn-in,
50 blocks of 20 s, final loop; SPEC 3) with symmetric feedback and with random feedback plus
the regulariser (each three times, alternating; ``--repeat``), as simulated seconds per wall
second (best run), the ratio of the two run by run, where the time goes (forward kernel,
backward sweep / products, synapse updates) and memory (peak, and resident size over the run,
which must not grow); the dense-product method ("gemm") and the GFLOP/s its products reach; and
a scale table over the hidden layer size. ``--recurrent`` adds the Oxford schedule on a
200-256-200 network whose hidden group also has a plastic connection onto itself
(``NetworkSpec.chain(..., recurrent=True)``), beside the same feed-forward network, both from
random initial weights, as wall seconds per simulated second. ``--window S`` instead times S
simulated seconds of the symmetric demo with learning (the chain, and the recurrent network with
``--recurrent``), alternating runs: a figure that survives a busy machine better than the full
schedule. Every measurement runs in its own process, so that peak memory is its own. Needs
../shared (the Oxford data and the recorded initial weights): found next to the repository or
through the environment variable SUPERSPIKE_SHARED.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """$SUPERSPIKE_SHARED, or ../shared next to the repository; exit with a message if neither."""
    env = os.environ.get("SUPERSPIKE_SHARED", "")
    for cand in ([Path(env)] if env else []) + [ROOT.parent / "shared"]:
        if (cand / "SPEC.md").exists():
            return cand
    sys.exit("bench_fast: ../shared (Oxford data, recorded reference run) not found; set SUPERSPIKE_SHARED")


def peak_mb() -> float:
    """Peak resident memory of this process, MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    """Current resident memory of this process, MB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


# -- workers (each runs in its own process) ----------------------------------------------------


def work_sgemm() -> dict:
    """Float32 matrix-product throughput of this machine (numpy's BLAS, all threads)."""
    rng = np.random.default_rng(0)
    out = {}
    for label, (m, k, n) in {"2048^3": (2048, 2048, 2048), "chunk 256x5000x200": (256, 5000, 200)}.items():
        a = rng.random((k, m), dtype=np.float32)
        b = rng.random((k, n), dtype=np.float32)
        a.T @ b
        best = float("inf")
        for _ in range(7):
            t = time.perf_counter()
            a.T @ b
            best = min(best, time.perf_counter() - t)
        out[label] = 2.0 * m * k * n / best / 1e9
    return out


def _oxford(feedback: str, hidden: int = 256, seed: int | None = None, recurrent: bool = False):
    from superspike.network import Network, NetworkSpec
    from superspike.params import RegularizerParams
    from superspike.task import Task, load_raster

    shared = shared_dir()
    ref = shared / "reference" / "oxford-burnin"
    data = shared / "ssbm" / "benchmarks" / "precise_timing" / "oxford"
    inp, _, _ = load_raster(data / "input.ras", 200, role="input")
    tgt, _, _ = load_raster(data / "target.ras", 200, drop_out_of_range=True)
    task = Task(inp, tgt, 1.89, "oxford")
    kw: dict = {}
    if feedback == "random":
        kw = dict(feedback="random", feedback_delay=0.7e-3, regularizer=RegularizerParams())
    spec = NetworkSpec.chain(200, (hidden,), 200, recurrent=recurrent, **kw)
    if seed is None:
        weights = {
            "input-hidden0": np.load(ref / "w_input_hidden.npy"),
            "hidden0-output": np.load(ref / "w_hidden_output.npy"),
        }
        fb = {"hidden0-output": np.load(ref / "b_output_hidden.npy")} if feedback == "random" else {}
        return Network(spec, weights, fb), task
    return Network.initialize(spec, seed), task


def work_oxford(feedback: str, method: str, blocks: int, block_s: float, net_kind: str = "demo") -> dict:
    """The Oxford demo's schedule (SPEC 3): burn-in, blocks with learning, final loop. ``net_kind``
    "demo": the recorded initial weights; "ff" / "recurrent": random weights (seed 1), without or
    with the plastic hidden -> hidden connection."""
    from superspike.engine.fast import FastEngine
    from superspike.run.schedule import Schedule
    from superspike.run.simulation import Simulation

    t_start = time.perf_counter()
    if net_kind == "demo":
        net, task = _oxford(feedback)
    else:
        net, task = _oxford(feedback, seed=1, recurrent=net_kind == "recurrent")
    sim = Simulation(net, task, engine=FastEngine(net, task, method=method))  # the method under test
    warm = Simulation(net, task, engine=sim.engine)
    warm.run_steps(2, learning=False)  # load (or compile) the kernels outside the timing
    sim.engine.timing = dict.fromkeys(sim.engine.timing, 0.0)
    sim.engine.flops = 0.0
    startup = time.perf_counter() - t_start
    sched = Schedule.create(20.0, block_s, blocks, task.grid, net.spec.neuron.dt, 1e-3)
    rss = [rss_mb()]
    costs = []
    t0 = time.perf_counter()
    sim.run_steps(sched.burn_in, learning=False)
    costs.append(sim.cost())
    for b in range(blocks):
        sim.run_steps(sched.block_start(b + 1) - sim.clock, learning=True, eta=sched.block_eta(b))
        costs.append(sim.cost())
        rss.append(rss_mb())
    sim.run_steps(sched.end - sim.clock, learning=False)
    wall = time.perf_counter() - t0
    tm = sim.engine.timing
    return {
        "feedback": feedback,
        "method": method,
        "net": net_kind,
        "synapses": sum(w.size for w in net.weights.values()),
        "simulated_s": sim.time,
        "wall_s": wall,
        "startup_s": startup,
        "timing": tm,
        "flops": sim.engine.flops,
        "cost_first": costs[0],
        "cost_last": costs[-1],
        "rss_mb": [rss[0], rss[1], rss[len(rss) // 2], rss[-1]],
        "peak_mb": peak_mb(),
    }


def work_scale(hidden: int, seconds: float) -> dict:
    """``seconds`` of learning on the Oxford data with a 200-hidden-200 network, random weights."""
    from superspike.run.simulation import Simulation

    net, task = _oxford("symmetric", hidden, seed=1)
    sim = Simulation(net, task, engine="fast")
    Simulation(net, task, engine=sim.engine).run_steps(2, learning=False)
    sim.engine.timing = dict.fromkeys(sim.engine.timing, 0.0)
    n = int(round(seconds / net.spec.neuron.dt))
    t0 = time.perf_counter()
    sim.run_steps(n, learning=True, eta=1e-3)
    wall = time.perf_counter() - t0
    synapses = sum(w.size for w in net.weights.values())
    return {
        "hidden": hidden,
        "simulated_s": sim.time,
        "wall_s": wall,
        "ns_per_synapse_step": wall / (synapses * n) * 1e9,
        "timing": sim.engine.timing,
        "peak_mb": peak_mb(),
    }


def work_window(net_kind: str, seconds: float) -> dict:
    """``seconds`` of learning (eta 1e-3) from t = 0, symmetric feedback: the demo ("demo", the
    recorded weights) or a random-weight network ("ff", "recurrent")."""
    from superspike.run.simulation import Simulation

    if net_kind == "demo":
        net, task = _oxford("symmetric")
    else:
        net, task = _oxford("symmetric", seed=1, recurrent=net_kind == "recurrent")
    sim = Simulation(net, task, engine="fast")
    Simulation(net, task, engine=sim.engine).run_steps(2, learning=False)
    sim.engine.timing = dict.fromkeys(sim.engine.timing, 0.0)
    t0 = time.perf_counter()
    sim.run_steps(int(round(seconds / net.spec.neuron.dt)), learning=True, eta=1e-3)
    return {"net": net_kind, "simulated_s": sim.time, "wall_s": time.perf_counter() - t0, "timing": sim.engine.timing}


# -- driver ----------------------------------------------------------------------------------


def spawn(*args: str) -> dict:
    """Run one worker in a fresh process and return its result."""
    cmd = [sys.executable, __file__, "--worker", *args]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        sys.exit(f"bench_fast: worker {args} failed:\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def _share(tm: dict) -> str:
    total = sum(tm.values()) or 1.0
    return ", ".join(f"{k} {100 * v / total:.0f}%" for k, v in tm.items())


def main() -> None:
    """Run the benchmarks and print their figures."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="10 blocks instead of 50, 5 s per scale run")
    ap.add_argument("--skip-scale", action="store_true")
    ap.add_argument("--repeat", type=int, default=3, help="run each Oxford demo this often, report the best")
    ap.add_argument(
        "--recurrent", action="store_true", help="also the Oxford schedule on a recurrent 256-hidden network"
    )
    ap.add_argument(
        "--window", type=float, metavar="S", help="only time S simulated seconds of learning, --repeat alternating runs"
    )
    ap.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        kind, *rest = args.worker
        if kind == "sgemm":
            out = work_sgemm()
        elif kind == "oxford":
            out = work_oxford(rest[0], rest[1], int(rest[2]), float(rest[3]), rest[4])
        elif kind == "window":
            out = work_window(rest[0], float(rest[1]))
        else:
            out = work_scale(int(rest[0]), float(rest[1]))
        print(json.dumps(out))
        return

    shared_dir()
    load = os.getloadavg()[0]
    print(f"machine: {os.cpu_count()} CPUs, load average {load:.2f} (other work skews the figures)")
    if args.window:
        window(args)
        return
    sg = spawn("sgemm")
    print("float32 GEMM throughput (numpy BLAS): " + ", ".join(f"{k}: {v:.0f} GFLOP/s" for k, v in sg.items()))
    blocks = 10 if args.quick else 50

    print(f"\nOxford demo, 200-256-200, 20 s burn-in + {blocks} x 20 s blocks + final loop (SPEC 3):")
    results = {}
    # the two variants alternate, so that a slow spell of the machine hits both alike
    all_runs: dict[str, list[dict]] = {"symmetric": [], "random": []}
    for _ in range(args.repeat):
        for feedback in all_runs:
            all_runs[feedback].append(spawn("oxford", feedback, "events", str(blocks), "20", "demo"))
    for feedback, runs in all_runs.items():
        r = min(runs, key=lambda x: x["wall_s"])
        results[feedback] = r
        tm = r["timing"]
        steps = r["simulated_s"] / 1e-4
        rss = "/".join(f"{x:.0f}" for x in r["rss_mb"])
        print(
            f"  {feedback:9s} {r['simulated_s']:7.1f} s simulated in {r['wall_s']:6.1f} s wall "
            f"({r['simulated_s'] / r['wall_s']:5.1f} x real time; startup {r['startup_s']:.1f} s"
            + (f"; best of {args.repeat}: " + " ".join(f"{x['wall_s']:.1f}" for x in runs) if args.repeat > 1 else "")
            + ")\n"
            f"            time: {_share(tm)}\n"
            f"            forward kernel {tm['forward'] / steps * 1e6:.2f} us/step, "
            f"sweep {tm['sweep'] / (steps / 5000) * 1e3:.2f} ms per 0.5 s update interval\n"
            f"            cost {r['cost_first']:.1f} -> {r['cost_last']:.1f}; "
            f"memory: peak {r['peak_mb']:.0f} MB, resident at start/after block 1/middle/end {rss} MB"
        )
    # the machine's speed drifts by tens of percent between runs here, so the ratio is taken run by
    # run (each pair back to back) and its median reported first; the best runs of each variant
    # may come from different spells of the machine
    ratio = results["random"]["wall_s"] / results["symmetric"]["wall_s"]
    print("  random feedback + regulariser / symmetric wall time: ", end="")
    if args.repeat > 1:
        pairs = [r["wall_s"] / s["wall_s"] for s, r in zip(all_runs["symmetric"], all_runs["random"], strict=True)]
        print(f"median {statistics.median(pairs):.2f} of the runs paired back to back "
              f"({' '.join(f'{x:.2f}' for x in pairs)}); best runs {ratio:.2f}")  # fmt: skip
    else:
        print(f"{ratio:.2f} (one pair; --repeat 3 or more for a figure that survives the machine's drift)")

    gb = 2
    r = spawn("oxford", "symmetric", "gemm", str(gb), "20", "demo")
    products = r["timing"]["products"]
    gf = r["flops"] / products / 1e9 if products else 0.0
    print(
        f"\nmethod 'gemm' (dense float32 products), Oxford symmetric, burn-in + {gb} blocks: "
        f"{r['simulated_s'] / r['wall_s']:.1f} x real time\n"
        f"  time: {_share(r['timing'])}\n"
        f"  products: {r['flops'] / 1e12:.2f} TFLOP in {products:.1f} s = {gf:.0f} GFLOP/s "
        f"({100 * gf / sg['chunk 256x5000x200']:.0f}% of the measured sgemm throughput for that shape)"
    )

    if args.recurrent:
        recurrent(args, blocks)
    if args.skip_scale:
        return
    secs = 5.0 if args.quick else 20.0
    print(f"\nscale: 200-h-200, Oxford data, random weights, {secs:.0f} s simulated with learning")
    print("  hidden   wall s   x real time   ns/synapse/step   peak MB   time shares")
    for h in (64, 256, 1024, 4096):
        r = spawn("scale", str(h), str(secs))
        speed = r["simulated_s"] / r["wall_s"]
        print(
            f"  {h:6d} {r['wall_s']:8.2f} {speed:12.1f} {r['ns_per_synapse_step']:17.4f}"
            f" {r['peak_mb']:9.0f}   {_share(r['timing'])}"
        )


def recurrent(args: argparse.Namespace, blocks: int) -> None:
    """The Oxford schedule on the recurrent 256-hidden network and on the same network without the
    recurrent connection (random weights, seed 1, symmetric feedback), alternating."""
    print(
        f"\nrecurrent network: 200-256-200 with a plastic hidden0 -> hidden0 connection, random weights, "
        f"symmetric feedback, 20 s burn-in + {blocks} x 20 s blocks + final loop:"
    )
    runs: dict[str, list[dict]] = {"ff": [], "recurrent": []}
    for _ in range(args.repeat):
        for kind in runs:
            runs[kind].append(spawn("oxford", "symmetric", "events", str(blocks), "20", kind))
    for kind, rs in runs.items():
        r = min(rs, key=lambda x: x["wall_s"])
        per = r["wall_s"] / r["simulated_s"]
        print(
            f"  {kind:9s} {r['synapses']:6d} synapses: {per * 1e3:6.1f} ms wall per simulated second "
            f"({1 / per:5.1f} x real time; best of {len(rs)}: " + " ".join(f"{x['wall_s']:.1f}" for x in rs) + " s)\n"
            f"            time: {_share(r['timing'])}; cost {r['cost_first']:.1f} -> {r['cost_last']:.1f}"
        )
    pairs = [b["wall_s"] / a["wall_s"] for a, b in zip(runs["ff"], runs["recurrent"], strict=True)]
    print(f"  recurrent / feed-forward wall time: median {statistics.median(pairs):.2f} of the pairs run back to "
          f"back ({' '.join(f'{x:.2f}' for x in pairs)})")  # fmt: skip


def window(args: argparse.Namespace) -> None:
    """``--window S``: S simulated seconds of learning, alternating runs (the symmetric demo, and
    the recurrent network with ``--recurrent``)."""
    kinds = ["demo", "recurrent"] if args.recurrent else ["demo"]
    runs: dict[str, list[dict]] = {k: [] for k in kinds}
    for _ in range(args.repeat):
        for kind in kinds:
            runs[kind].append(spawn("window", kind, str(args.window)))
    for kind, rs in runs.items():
        walls = [r["wall_s"] for r in rs]
        best = min(rs, key=lambda x: x["wall_s"])
        print(
            f"  {kind:9s} {args.window:.0f} s simulated with learning: wall s "
            + " ".join(f"{w:.2f}" for w in walls)
            + f" (median {statistics.median(walls):.2f}, best {min(walls):.2f}; "
            f"{best['simulated_s'] / best['wall_s']:.1f} x real time)\n"
            f"            time of the best: {_share(best['timing'])}"
        )


if __name__ == "__main__":
    main()
