"""What a run will cost, estimated from its configuration before anything large is allocated.

:func:`check_run` estimates the memory (state and scratch of every group and connection, the
learning curve kept in memory) and the disk (spike files, learning curve) of a resolved run and
refuses, with a one-line :class:`~superspike.errors.ConfigError` naming the option to change,
a run that exceeds what the machine has, or whose final loop (plasticity off, to the end of the
next loop period, SPEC 3) is longer than its training. ``allow_large`` (``--allow-large``)
accepts the run anyway.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from superspike.errors import ConfigError
from superspike.network import NetworkSpec
from superspike.run.schedule import Schedule

#: bytes per synapse of a plastic connection, as measured: w, el, el_flt, el_sum, grad2 (float32)
#: and the fast engine's and optimiser's working arrays
PLASTIC_SYNAPSE_BYTES = 128
FIXED_SYNAPSE_BYTES = 32  #: w and the engine's working copies
CURVE_ROW_BYTES = 1200  #: one learning-curve row kept in memory (a dict of about 10 floats)
CURVE_ROW_DISK = 200  #: one learning-curve line on disk
SPK_RECORD_BYTES = 8  #: one spike in an spk file (step, id: two uint32)
LIF_RATE_HZ = 20.0  #: assumed mean firing rate of a LIF group for the size of its spike file
FINAL_LOOP_FREE_S = 60.0  #: a final loop up to this long is accepted whatever the training
MAX_DURATION_S = 1e7  #: longest simulated run accepted without the override (116 days; weeks of wall time)
MAX_SPK_STEP = 2**32 - 1  #: the last time step an spk file can record (uint32)
OVERRIDE = "--allow-large"


@dataclass(frozen=True)
class Estimate:
    """Estimated needs of a run, in bytes, and its simulated duration in s."""

    memory: int
    disk: int
    duration: float
    network_memory: int
    curve_memory: int
    record_memory: int = 0  #: spikes kept in memory (``train(record=True)``)


def estimate(
    spec: NetworkSpec, sched: Schedule, input_spikes_per_period: int, out: bool, record: bool = False
) -> Estimate:
    """Memory and disk of a run of ``spec`` on ``sched`` (``out``: with a run directory;
    ``record``: every spike kept in memory too)."""
    dt = spec.neuron.dt
    net = 0
    for c in spec.connections:
        pre, post = spec.shapes[c.name]
        net += pre * post * (PLASTIC_SYNAPSE_BYTES if c.plastic else FIXED_SYNAPSE_BYTES)
    for rows, cols in spec.feedback_shapes.values():
        net += rows * cols * 4
    lag = spec.neuron.delay_steps + spec.feedback_lag() + 2
    for g in spec.groups:
        line = spec.delay_line_steps(g) if g.lif else 0
        net += g.n * (4 * (lag + line) + 64)
    lines = sched.blocks + 2
    curve = lines * (CURVE_ROW_BYTES + 16 * len(spec.lif_groups))
    disk = 0
    duration = sched.end * dt
    periods = sched.end / max(sched.period, 1)
    spikes = int(input_spikes_per_period * periods) + int(sum(g.n for g in spec.lif_groups) * LIF_RATE_HZ * duration)
    recorded = 16 * spikes if record else 0  # a step and an id, int64 each
    if out:
        disk += spikes * SPK_RECORD_BYTES
        disk += lines * (CURVE_ROW_DISK + 20 * len(spec.lif_groups))
        disk += net // 4  # weights.npz and checkpoints: the state once more, compressed or not
    return Estimate(net + curve + recorded, disk, duration, net, curve, recorded)


def available_memory() -> int:
    """Memory a run may take: MemAvailable (else physical memory, else 8 GiB), at most the
    address-space limit (ulimit -v) and the memory cgroup's limit, where set."""
    limits = []
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    limits.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    if not limits:
        try:
            limits.append(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            limits.append(8 << 30)
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        if soft != resource.RLIM_INFINITY:
            limits.append(soft)
    except (ImportError, OSError, ValueError):
        pass
    for name in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(name).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:
            limits.append(int(text))
    return min(limits)


def free_disk(path: str | Path) -> int | None:
    """Free bytes on the file system that holds ``path`` (or its nearest existing parent)."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        usage = shutil.disk_usage(p)
    except OSError:
        return None
    return usage.free if usage.total else None  # /proc and the like report 0 of 0: let the write say


def _size(n: float) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n / 1e3:.3g} kB"


def check_run(
    spec: NetworkSpec,
    sched: Schedule,
    input_spikes_per_period: int,
    out: str | Path | None,
    allow_large: bool = False,
    record: bool = False,
) -> Estimate:
    """Refuse (ConfigError naming the option to change) a run that would not fit: memory beyond
    what the system has, disk beyond the free space of ``out``, a final loop longer than the
    training. Returns the estimate."""
    est = estimate(spec, sched, input_spikes_per_period, out is not None, record)
    dt = spec.neuron.dt
    what = "--blocks, a shorter --block-duration or --burn-in"
    if out is not None and sched.end > MAX_SPK_STEP:  # no override: the files cannot hold it
        raise ConfigError(
            "blocks",
            f"the run would last {float(sched.end):.4g} time steps ({est.duration:.6g} s), more than the "
            f"{MAX_SPK_STEP} an spk file can record; use fewer {what}",
        )
    if allow_large:
        return est
    if est.duration > MAX_DURATION_S:
        raise ConfigError(
            "blocks",
            f"the run would simulate {est.duration:.6g} s (more than {MAX_DURATION_S:.0e} s); use fewer {what}, "
            f"or {OVERRIDE}",
        )
    # the loop period completed after training, and one more (test periods asked for beyond that
    # one are the user's or the task's choice)
    final = (sched.test_start + sched.period - sched.training_end) * dt
    training = sched.training_end * dt
    if final > max(training, FINAL_LOOP_FREE_S):
        raise ConfigError(
            "grid",
            f"the final loop (plasticity off, to the end of the next loop period) would run {final:.6g} s, "
            f"longer than the training ({training:.6g} s) with a loop period of {sched.period * dt:.6g} s; "
            f"pass a smaller --grid (the pattern's length), or {OVERRIDE}",
        )
    memory = available_memory()
    if est.memory > memory:
        if est.record_memory > max(est.curve_memory, est.network_memory):
            key, what = "record", f"every spike of {est.duration:.6g} s kept in memory (record=True)"
            way = "record=False (the run directory keeps them on disk), fewer --blocks"
        elif est.curve_memory > est.network_memory:
            key, what = "blocks", f"{sched.blocks} blocks (one learning-curve line each)"
            way = "fewer --blocks"
        else:
            key, what = "network", "the network's neurons and connections"
            way = "fewer neurons (--hidden, --nin/--nout, or the [network] groups)"
        raise ConfigError(
            key,
            f"the run would need about {_size(est.memory)} of memory for {what}, more than the "
            f"{_size(memory)} available; use {way}, or {OVERRIDE}",
        )
    if out is not None:
        free = free_disk(out)
        if free is not None and est.disk > free:
            raise ConfigError(
                "blocks",
                f"the run would write about {_size(est.disk)} to {out} over {est.duration:.6g} s simulated, "
                f"more than the {_size(free)} free there; use fewer --blocks or a shorter --block-duration, "
                f"or {OVERRIDE}",
            )
    return est
