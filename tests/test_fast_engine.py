"""The fast engine (SPEC 5) against the per-step reference engine (SPEC 2.1) and the recorded run.

Agreement: both engines advance copies of one state through the same chunks (the run loop's
cuts, and odd ones) with learning on and a large learning rate, so that the weights move.
After every chunk the spikes must be identical and every field of the state equal: integer
fields exactly, float fields to ``rtol`` with an absolute floor of ``rtol`` times the field's
largest magnitude (float32 sums in a different order). After every update the weights agree to
relative 1e-4 (with a floor of 1e-4 eta for weights near zero), and so does the reported cost.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import small_network, small_task

from superspike.engine import ENGINES, State
from superspike.engine.fast import FastEngine, default_threads, forward_kernels, sweep_blocks
from superspike.engine.reference import ReferenceEngine
from superspike.io import read_spk
from superspike.network import Network, NetworkSpec
from superspike.optim import RMaxProp
from superspike.params import RegularizerParams, RuleParams, cost_scale
from superspike.task import Task, load_raster

UPDATE = 5000
ETA = 5e-3  # five times the demo's, so that weights change visibly


def _cost(state: State, spec: NetworkSpec) -> float:
    t = state.clock * spec.neuron.dt
    return (
        cost_scale(spec.rule)
        * float(np.mean(state.conns[-1].avg, dtype=np.float64))
        / (1 - math.exp(-t / spec.rule.tau_cost) + 1e-9)
    )


def _compare_states(ref: State, fast: State, where: str, rtol: float = 1e-4) -> None:
    a, b = ref.to_arrays(), fast.to_arrays()
    assert a.keys() == b.keys()
    for name, x in a.items():
        y = b[name]
        assert x.shape == y.shape and x.dtype == y.dtype, f"{name} {where}"
        if x.dtype.kind in "iub":
            np.testing.assert_array_equal(y, x, err_msg=f"{name} {where}")
        elif x.size:
            floor = rtol * float(np.abs(x).max())
            np.testing.assert_allclose(y, x, rtol=rtol, atol=floor, err_msg=f"{name} {where}")


def _cuts(kind: str, total: int) -> list[int]:
    """Chunk lengths: the run loop's (a step 0 chunk, then to right after each update step), or odd."""
    if kind == "run":
        out, clock = [], 0
        while clock < total:
            nxt = -(-clock // UPDATE) * UPDATE + 1
            out.append(min(nxt, total) - clock)
            clock += out[-1]
        return out
    pattern = [1, 4999, 1, 37, 2, 2461, 2500, 1, 3000, 1999, 1]
    out, clock = [], 0
    k = 0
    while clock < total:
        out.append(min(pattern[k % len(pattern)], total - clock))
        clock += out[-1]
        k += 1
    return out


def _agree(net: Network, task: Task, cuts: str = "run", updates: int = 3, method: str = "events",
           **engine_kw: object) -> FastEngine:  # fmt: skip
    ref_engine = ReferenceEngine(net, task)
    fast_engine = FastEngine(net, task, method=method, **engine_kw)
    ref, fast = State.initial(net), State.initial(net)
    opt = RMaxProp(net.spec.rule.update_interval, net.spec.rule.tau_rms, 1e-12, net.spec.rule.w_max)
    spikes = 0
    for n in _cuts(cuts, updates * UPDATE + 1):
        ra, rb = ref_engine.advance(ref, n), fast_engine.advance(fast, n)
        for (sa, ia), (sb, ib) in zip(ra.spikes, rb.spikes, strict=True):
            np.testing.assert_array_equal(sb, sa, err_msg=f"spike steps before {ref.clock}")
            np.testing.assert_array_equal(ib, ia, err_msg=f"spike ids before {ref.clock}")
            spikes += len(sa)
        _compare_states(ref, fast, f"at step {ref.clock}")
        if (ref.clock - 1) % UPDATE == 0:
            for c, (ca, cb) in enumerate(zip(ref.conns, fast.conns, strict=True)):
                learn = net.spec.plastic(c)
                opt.step(ca, UPDATE, ETA, learn)
                opt.step(cb, UPDATE, ETA, learn)
                np.testing.assert_allclose(cb.w, ca.w, rtol=1e-4, atol=1e-4 * ETA, err_msg=f"w{c}, {ref.clock}")
            assert _cost(fast, net.spec) == pytest.approx(_cost(ref, net.spec), rel=1e-4)
    assert spikes > 20, "the test network should spike"
    # the weights did move
    assert any(not np.allclose(c.w, w0) for c, w0 in zip(ref.conns, net.weights, strict=True))
    return fast_engine


# -- the discrete kernels of SPEC 5 against the per-step recursion of SPEC 2.1 -----------------


def test_kernels_match_the_per_step_recursion() -> None:
    spec = NetworkSpec(2, (), 1)
    k_decay = float(np.float32(spec.neuron.dt / spec.rule.tau_decay))
    d = float(np.float32(math.exp(-spec.neuron.dt / spec.rule.tau_rise)))
    G, Dk = forward_kernels(k_decay, d, 3000)
    el = elf = 0.0
    got_g, got_d = [], []
    for m in range(3000):
        el += 1.0 if m == 0 else 0.0  # 4b: a unit coincidence in step 0
        elf += k_decay * (el - elf)  # 4c
        el *= d
        got_g.append(elf)
        got_d.append(el)
    np.testing.assert_allclose(G, got_g, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(Dk, got_d, rtol=1e-12, atol=1e-300)


def test_engine_is_registered() -> None:
    assert ENGINES["fast"] is FastEngine


# -- agreement with the reference engine ---------------------------------------------------------


CONFIGS = {
    "no-hidden": dict(hidden=()),
    "one-hidden": dict(hidden=(8,)),
    "two-hidden": dict(hidden=(6, 5)),
    "random": dict(hidden=(8,), feedback="random"),
    "uniform": dict(hidden=(8,), feedback="uniform"),
    "random-two-hidden-reg": dict(hidden=(6, 5), feedback="random", regularizer=RegularizerParams()),
    "reg-delay": dict(hidden=(8,), regularizer=RegularizerParams(), feedback_delay=0.7e-3),
    # an error cut-off of 0: the regulariser acts on every step, also where the error is exactly 0
    "reg-no-error-cutoff": dict(hidden=(8,), regularizer=RegularizerParams(), rule=RuleParams(error_cutoff=0.0)),
    "symmetric-delay": dict(hidden=(8,), feedback_delay=1.2e-3),
    "linear": dict(hidden=(8,), linear=True),
    "fixed-hidden": dict(hidden=(8,), fixed_hidden=True),
    "three-hidden": dict(hidden=(7, 6, 5)),
    "three-hidden-uniform-reg-a2.5": dict(
        hidden=(7, 6, 5), feedback="uniform", regularizer=RegularizerParams(exponent=2.5)
    ),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_agrees_with_reference(name: str) -> None:
    task = small_task()
    _agree(small_network(task, **CONFIGS[name]), task)


@pytest.mark.parametrize("name", ["one-hidden", "random-two-hidden-reg"])
def test_agrees_with_odd_chunks(name: str) -> None:
    task = small_task(seed=1)
    _agree(small_network(task, **CONFIGS[name]), task, cuts="odd")


@pytest.mark.parametrize("name", ["two-hidden", "reg-delay"])
def test_gemm_method_agrees(name: str) -> None:
    task = small_task()
    engine = _agree(small_network(task, **CONFIGS[name]), task, method="gemm")
    assert engine.flops > 0


@pytest.mark.parametrize("cutoff", [0.02, 0.3])
def test_large_psp_cutoff(cutoff: float) -> None:
    """A PSP cut-off above the first step of z~ after a spike: arrivals inside skipped stretches,
    and synapses whose pre and post are never active together (their el_sum must stay ~0, or the
    first RMaxProp update, with grad2 = 0, would move them by a full eta)."""
    task = small_task(rate=40.0)
    _agree(small_network(task, hidden=(8,), rule=RuleParams(psp_cutoff=cutoff)), task)


@pytest.mark.parametrize(("tau_rise", "low", "high"), [(1e-4, 100, 600), (9.99e-3, 2500, 2500)])
def test_rise_time_extremes(tau_rise: float, low: int, high: int) -> None:
    """The sweep's sum P grows by q/d per step (engine._fast_kernels.sweep): with a rise time of
    one step (q/d = e) chunks are shortened so that it stays finite. With a rise time next to the
    decay time, d > q (Q grows, slowly: no cap). The engines agree in both."""
    task = small_task()
    engine = _agree(small_network(task, hidden=(8,), rule=RuleParams(tau_rise=tau_rise)), task)
    assert low <= engine.max_block <= high


def test_long_calls_are_split() -> None:
    task = small_task(seed=2)
    net = small_network(task, hidden=(8,), feedback="random")
    ref, fast = State.initial(net), State.initial(net)
    ra = ReferenceEngine(net, task).advance(ref, 12345)
    rb = FastEngine(net, task, max_block=1000).advance(fast, 12345)
    for (sa, ia), (sb, ib) in zip(ra.spikes, rb.spikes, strict=True):
        np.testing.assert_array_equal(sb, sa)
        np.testing.assert_array_equal(ib, ia)
    _compare_states(ref, fast, "after 12345 steps")


@pytest.mark.parametrize(
    ("bounds", "threads"),
    [([0, 256, 456], 2), ([0, 200], 2), ([0, 4096, 4296], 2), ([0, 256, 456], 1), ([0, 20, 40, 60], 4),
     ([0, 100, 356, 556], 3), ([0, 3, 1000], 4)],
)  # fmt: skip
def test_sweep_blocks_cover_columns_once_within_connections(bounds: list[int], threads: int) -> None:
    blocks = sweep_blocks(bounds, threads)
    assert 1 <= len(blocks) <= threads
    cols = np.concatenate([np.arange(a, b) for blk in blocks for a, b in blk])
    np.testing.assert_array_equal(np.sort(cols), np.arange(bounds[0], bounds[-1]))
    for blk in blocks:
        for a, b in blk:
            c = np.searchsorted(bounds, a, side="right") - 1
            assert bounds[c] <= a < b <= bounds[c + 1], f"block {a}-{b} spans connections {bounds}"
    widths = [sum(b - a for a, b in blk) for blk in blocks]
    if bounds == [0, 256, 456] and threads == 2:
        assert widths == [256, 200]  # one connection per thread (the measured best for Oxford)
    if bounds[-1] >= 200 * threads:
        assert max(widths) <= 1.3 * bounds[-1] / threads  # no thread gets far more than its share


def test_default_threads_respect_a_fair_share(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NUMBA_NUM_THREADS", raising=False)
    free = default_threads()
    assert 1 <= free <= 4
    monkeypatch.setenv("NUMBA_NUM_THREADS", "1")  # what `superspike sweep` sets with one CPU per worker
    assert default_threads() == 1
    task = small_task()
    assert FastEngine(small_network(task), task).threads == 1


def test_thread_count_does_not_change_results() -> None:
    """Columns are swept in blocks per thread; the results must not depend on how many."""
    task = small_task(seed=4, nout=40, rate=30.0)
    net = small_network(task, hidden=(70, 40), feedback="random", regularizer=RegularizerParams())
    engines = [FastEngine(net, task, threads=t) for t in (1, 2, 3)]
    assert [len(e._blocks) for e in engines] == [1, 2, 3]
    states = [State.initial(net) for _ in engines]
    opt = RMaxProp(0.5, 30.0, 1e-12, 0.1)
    for n in _cuts("run", 3 * UPDATE + 1):
        for e, st in zip(engines, states, strict=True):
            e.advance(st, n)
            if (st.clock - 1) % UPDATE == 0:
                for c in st.conns:
                    opt.step(c, UPDATE, ETA, True)
    ref = states[0].to_arrays()
    assert all(not np.allclose(c.w, w0) for c, w0 in zip(states[0].conns, net.weights, strict=True))
    for st in states[1:]:
        for name, x in st.to_arrays().items():
            np.testing.assert_array_equal(x, ref[name], err_msg=name)


def test_engines_interchangeable_mid_run() -> None:
    task = small_task(seed=3)
    net = small_network(task, hidden=(8,))
    engines = [ReferenceEngine(net, task), FastEngine(net, task)]
    opt = RMaxProp(0.5, 30.0, 1e-12, 0.1)
    pure, mixed = State.initial(net), State.initial(net)
    for k, n in enumerate(_cuts("run", 4 * UPDATE + 1)):
        engines[0].advance(pure, n)
        engines[k % 2].advance(mixed, n)
        if (pure.clock - 1) % UPDATE == 0:
            for a, b in zip(pure.conns, mixed.conns, strict=True):
                opt.step(a, UPDATE, ETA, True)
                opt.step(b, UPDATE, ETA, True)
    _compare_states(pure, mixed, "after switching engines every chunk")


def test_windows_of_opportunity() -> None:
    from superspike.task.xor import XorParams, xor_task

    task = xor_task(0, 1e-4, XorParams(nin=30, trials_per_condition=2))
    net = small_network(task, hidden=(6,), feedback="random", w0=0.5)
    _agree(net, task, updates=2)


def test_silent_layer_keeps_eligibility() -> None:
    """A hidden layer pushed below -80 mV (sigma' = 0) after being active: el and el_flt then hold
    only what decays from before, which the fast engine must still reproduce."""
    task = small_task(seed=4)
    net = small_network(task, hidden=(6, 5))
    for method in ("events", "gemm"):
        ref, fast = State.initial(net), State.initial(net)
        ReferenceEngine(net, task).advance(ref, 3000)
        FastEngine(net, task, method=method).advance(fast, 3000)
        for st in (ref, fast):  # silence the output layer: strongly inhibitory weights
            st.conns[-1].w[...] = -0.1
        ReferenceEngine(net, task).advance(ref, 5000)
        FastEngine(net, task, method=method).advance(fast, 5000)
        assert np.abs(ref.conns[-1].el).max() > 0
        _compare_states(ref, fast, f"after silencing ({method})", rtol=2e-4)


def test_denormals_still_work_after_an_advance() -> None:
    """The forward kernel flushes denormals to zero while it runs; the setting must not leak."""
    task = small_task()
    net = small_network(task, hidden=(4,))
    FastEngine(net, task).advance(State.initial(net), 100)
    tiny = np.array([1e-39], np.float32)
    assert (tiny / np.float32(10))[0] != 0
    assert float(np.multiply(tiny, np.float32(0.5))[0]) > 0


# -- the recorded run of the reference simulator (../shared/reference/oxford-burnin) ------------

BURN_IN = 200_000
RECORDED = {  # README: cost line at t = 20 s, means of (w, el, el_flt, el_sum, grad2) per connection
    "symmetric": [
        (3.58835e-06, 1.50371e01, 2.02942e01, -1.74741e-01, 4.73812e-05),
        (-3.02400e-05, 1.91177e00, 3.17985e00, 1.69300e01, 2.94414e-04),
    ],
    "random": [
        (3.58835e-06, 1.52919e01, 2.06469e01, -1.66556e02, 4.37569e00),
        (-3.02400e-05, 1.91177e00, 3.17985e00, 1.69298e01, 2.94408e-04),
    ],
}


def _sampled_weights(readme: str, feedback: str) -> list[tuple[int, int, float, float]]:
    sym, rnd = readme.split("## The random-feedback variant")
    text = sym if feedback == "symmetric" else rnd
    rows = re.findall(r"^\|\s*(\d+)\s*\|\s*(\d+)\s*\|\s*([-+0-9.e]+)\s*\|\s*([-+0-9.e]+)\s*\|$", text, re.M)
    assert len(rows) == 40
    return [(int(a), int(b), float(c), float(d)) for a, b, c, d in rows]


@pytest.mark.parametrize("feedback", ["symmetric", "random"])
def test_reproduces_recorded_reference_run(shared: Path, feedback: str) -> None:
    ref_dir = shared / "reference" / "oxford-burnin"
    data = shared / "ssbm" / "benchmarks" / "precise_timing" / "oxford"
    inp, _, _ = load_raster(data / "input.ras", 200, role="input")
    tgt, _, _ = load_raster(data / "target.ras", 200, drop_out_of_range=True)
    task = Task(inp, tgt, 1.89, "oxford")
    weights = [np.load(ref_dir / "w_input_hidden.npy"), np.load(ref_dir / "w_hidden_output.npy")]
    if feedback == "symmetric":
        net = Network(NetworkSpec(200, (256,), 200), weights, {})
    else:  # the random-feedback demo: 0.8 ms feedback delay read as 7 steps (SPEC 2.2), regulariser
        spec = NetworkSpec(200, (256,), 200, feedback="random", feedback_delay=0.7e-3, regularizer=RegularizerParams())
        net = Network(spec, weights, {1: np.load(ref_dir / "b_output_hidden.npy")})
    engine = FastEngine(net, task)
    state = State.initial(net)
    opt = RMaxProp(0.5, 30.0, 1e-12, 0.1)
    spikes: list[list[tuple[np.ndarray, np.ndarray]]] = [[], []]
    for n in _cuts("run", BURN_IN):
        for g, part in enumerate(engine.advance(state, n).spikes):
            spikes[g].append(part)
        if (state.clock - 1) % UPDATE == 0:
            for c in state.conns:
                opt.step(c, UPDATE, 1e-3, False)
    for g, name in enumerate(("hidden", "output")):
        exp_s, exp_i = read_spk(ref_dir / f"{name}.spk", dt=1e-4)
        got_s = np.concatenate([p[0] for p in spikes[g]])
        got_i = np.concatenate([p[1] for p in spikes[g]])
        assert len(got_s) == len(exp_s), name
        np.testing.assert_array_equal(got_s, exp_s, err_msg=name)
        np.testing.assert_array_equal(got_i[np.lexsort((got_i, got_s))], exp_i[np.lexsort((exp_i, exp_s))])
    assert _cost(state, net.spec) == pytest.approx(214.366, rel=1e-3)
    for conn, means in zip(state.conns, RECORDED[feedback], strict=True):
        fields = (conn.w, conn.el, conn.el_flt, conn.el_sum, conn.grad2)
        np.testing.assert_allclose([float(np.mean(x, dtype=np.float64)) for x in fields], means, rtol=5e-3)
    # the first update, in step 200000, with learning on
    engine.advance(state, 1)
    for c in state.conns:
        opt.step(c, UPDATE, 1e-3, True)
    table = _sampled_weights((ref_dir / "README.md").read_text(), feedback)
    for k, (pre, post, before, after) in enumerate(table):
        c = 0 if k < 20 else 1
        assert weights[c][pre, post] == pytest.approx(before, abs=1e-9)
        assert state.conns[c].w[pre, post] == pytest.approx(after, abs=1e-6), f"w{c}[{pre}, {post}]"
