"""Speed of the file readers and writers (superspike.io) on the largest shared files.

    python benchmarks/bench_io.py [--shared DIR] [--repeat N]

The shared folder is --shared, else $SUPERSPIKE_SHARED, else ../shared beside the repository.

Prints the best of N wall-clock times for reading the ssbm Mona Lisa rasters (target 1.6 MB,
input 2.2 MB), writing them back, reading the recorded reference run's spk files, a 10-million
spike spk file, and a weight archive the size of the Oxford network. Without ../shared it times
synthetic files of the same size.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from superspike.io import load_weights, read_ras, read_spk, save_weights, write_ras, write_spk
from superspike.task import load_raster


def best(fn: Callable[[], object], repeat: int) -> float:
    """Best wall-clock time of ``repeat`` calls, s."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def find_shared(given: str | None) -> Path | None:
    """--shared, else $SUPERSPIKE_SHARED, else ../shared beside the repository; None if it has no ssbm data."""
    env = os.environ.get("SUPERSPIKE_SHARED")
    cand = Path(given or env or Path(__file__).resolve().parents[2] / "shared").expanduser()
    return cand if (cand / "ssbm").is_dir() else None


def report(what: str, seconds: float, size: int | None = None, items: int | None = None) -> None:
    extra = []
    if size is not None:
        extra.append(f"{size / 1e6:6.2f} MB")
    if items is not None:
        extra.append(f"{items:>10,d} items")
    print(f"{what:<48} {seconds * 1e3:8.1f} ms   {'  '.join(extra)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", help="the shared folder (default: $SUPERSPIKE_SHARED, else ../shared)")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    shared = find_shared(args.shared)
    rng = np.random.default_rng(0)

    if shared is not None:
        mona = shared / "ssbm" / "benchmarks" / "precise_timing" / "monalisa"
        rasters = {"monalisa/target.ras": mona / "target.ras", "monalisa/input.ras": mona / "input.ras"}
    else:
        print("(no ../shared: synthetic rasters of the Mona Lisa files' size)")
        rasters = {}
        for name, n, count in (("target.ras", 500, 123703), ("input.ras", 1000, 164537)):
            path = tmp / name
            write_ras(path, rng.uniform(0, 33.1, count), rng.integers(0, n, count))
            rasters[f"synthetic {name}"] = path

    for name, path in rasters.items():
        t, i, _ = read_ras(path)
        report(f"read_ras {name}", best(lambda p=path: read_ras(p), args.repeat), path.stat().st_size, len(t))
    target = next(iter(rasters.values()))
    report(
        "load_raster target, --id-offset -1",
        best(lambda: load_raster(target, None, id_offset=-1 if shared else 0), args.repeat),
    )
    t, i, _ = read_ras(target)
    out = tmp / "copy.ras"
    report("write_ras (same spikes)", best(lambda: write_ras(out, t, i), args.repeat), None, len(t))

    if shared is not None:
        ref = shared / "reference" / "oxford-burnin" / "input.spk"
        s, _ = read_spk(ref)
        report(
            "read_spk reference input.spk",
            best(lambda: read_spk(ref, dt=1e-4), args.repeat),
            ref.stat().st_size,
            len(s),
        )
    n = 10_000_000
    steps = np.sort(rng.integers(0, 2_000_000, n))
    ids = rng.integers(0, 256, n)
    big = tmp / "big.spk"
    report("write_spk 10M spikes", best(lambda: write_spk(big, steps, ids, 1e-4), 2), None, n)
    report("read_spk 10M spikes (checked)", best(lambda: read_spk(big, 1e-4, 256, 2_000_000), 2), big.stat().st_size, n)

    shapes = {"input-hidden0": (200, 256), "hidden0-output": (256, 200)}
    w = {name: rng.normal(size=s).clip(-0.1, 0.1).astype(np.float32) for name, s in shapes.items()}
    npz = tmp / "w.npz"
    save_weights(npz, w, {"hidden0-output": rng.normal(size=(200, 256)).astype(np.float32)})
    fb = {"hidden0-output": (200, 256)}
    report(
        "load_weights 200-256-200 + feedback",
        best(lambda: load_weights(npz, shapes, fb), args.repeat),
        npz.stat().st_size,
    )


if __name__ == "__main__":
    main()
