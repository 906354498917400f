"""The fast engine (SPEC 5) against the per-step reference engine (SPEC 2.1) and the recorded run.

Agreement: both engines advance copies of one state through the same chunks (the run loop's
cuts, and odd ones) with learning on and a large learning rate, so that the weights move.
After every chunk the spikes must be identical and every field of the state equal: integer
fields exactly, float fields to ``rtol`` with an absolute floor of ``rtol`` times the field's
largest magnitude (float32 sums in a different order). After every update the weights agree to
relative 1e-4 (with a floor of 1e-4 eta for weights near zero), and so does the reported cost.
Chains (``CONFIGS``) and graphs (``GRAPHS``: recurrence, skip connections, groups with their own
neuron constants, direct feedback alignment, fixed and plastic connections mixed, several input
and output groups) are checked alike, with both methods of forming the sums.
"""

from __future__ import annotations

import math
import os
import re
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import small_network, small_task

from superspike.engine import ENGINES, State
from superspike.engine.fast import FastEngine, default_threads, forward_kernels, sweep_blocks
from superspike.engine.reference import ReferenceEngine
from superspike.io import read_spk
from superspike.network import Network, NetworkSpec
from superspike.network.graph import Connection, Group
from superspike.optim import RMaxProp
from superspike.params import NeuronParams, RegularizerParams, RuleParams
from superspike.rule.cost import reported_mse
from superspike.task import Task, load_raster

UPDATE = 5000
ETA = 5e-3  # five times the demo's, so that weights change visibly


def _cost(state: State, spec: NetworkSpec) -> float:
    avg = np.concatenate([state.groups[g.name].avg for g in spec.output_groups])
    return reported_mse(avg, state.clock * spec.neuron.dt, spec.rule)


def _optimizer(spec: NetworkSpec) -> RMaxProp:
    return RMaxProp(spec.rule.update_interval, spec.rule.tau_rms, 1e-12, spec.rule.w_max)


def _update(opt: RMaxProp, state: State, spec: NetworkSpec, eta: float = ETA, learning: bool = True) -> None:
    """Step 5 on every plastic connection (fixed ones have no gradient)."""
    for c in spec.plastic_connections:
        cs = state.conns[c.name]
        opt.step(cs.w, cs.el_sum, cs.grad2, UPDATE, eta, learning)


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
    spec = net.spec
    ref_engine = ReferenceEngine(net, task)
    fast_engine = FastEngine(net, task, method=method, **engine_kw)
    ref, fast = State.initial(net), State.initial(net)
    opt = _optimizer(spec)
    spikes = {g.name: 0 for g in spec.lif_groups}
    for n in _cuts(cuts, updates * UPDATE + 1):
        ra, rb = ref_engine.advance(ref, n), fast_engine.advance(fast, n)
        assert list(rb.spikes) == list(ra.spikes) == [g.name for g in spec.lif_groups]
        for name, (sa, ia) in ra.spikes.items():
            sb, ib = rb.spikes[name]
            np.testing.assert_array_equal(sb, sa, err_msg=f"{name}: spike steps before {ref.clock}")
            np.testing.assert_array_equal(ib, ia, err_msg=f"{name}: spike ids before {ref.clock}")
            spikes[name] += len(sa)
        _compare_states(ref, fast, f"at step {ref.clock}")
        if (ref.clock - 1) % UPDATE == 0:
            _update(opt, ref, spec)
            _update(opt, fast, spec)
            for c in spec.plastic_connections:
                wa, wb = ref.conns[c.name].w, fast.conns[c.name].w
                np.testing.assert_allclose(wb, wa, rtol=1e-4, atol=1e-4 * ETA, err_msg=f"{c.name}, {ref.clock}")
            assert _cost(fast, spec) == pytest.approx(_cost(ref, spec), rel=1e-4)
    assert sum(spikes.values()) > 20, "the test network should spike"
    # the weights did move
    assert any(not np.allclose(ref.conns[c.name].w, net.weights[c.name]) for c in spec.plastic_connections)
    return fast_engine


# -- the discrete kernels of SPEC 5 against the per-step recursion of SPEC 2.1 -----------------


def test_kernels_match_the_per_step_recursion() -> None:
    spec = NetworkSpec.chain(2, (), 1)
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


# -- agreement with the reference engine: chains ---------------------------------------------------


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
    # fixed hidden connections with the regulariser: h still advances, nothing else in that group learns
    "fixed-hidden-reg": dict(hidden=(8,), fixed_hidden=True, feedback="random", regularizer=RegularizerParams()),
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


# -- agreement with the reference engine: graphs ---------------------------------------------------


def _graph(groups: list[Group], conns: list[Connection], seed: int = 3, w0: float = 0.3, **kw) -> Network:
    return Network.initialize(NetworkSpec(tuple(groups), tuple(conns), **kw), seed, w0)


def _two_tau(**kw: object) -> Network:
    """Two hidden groups with different membrane time constants (one also another threshold)
    feeding one output."""
    return _graph(
        [
            Group("input", 20, "input"),
            Group("fast", 6, neuron=NeuronParams(tau_mem=5e-3)),
            Group("slow", 5, neuron=NeuronParams(tau_mem=20e-3, threshold=-52e-3)),
            Group("output", 3, target=True),
        ],
        [
            Connection("input-fast", "input", "fast"),
            Connection("input-slow", "input", "slow"),
            Connection("fast-output", "fast", "output"),
            Connection("slow-output", "slow", "output"),
        ],
        **kw,
    )


def _skip(**kw: object) -> Network:
    """A skip connection input -> output beside a hidden layer (created last: delivery order)."""
    return _graph(
        [Group("input", 20, "input"), Group("hidden0", 8), Group("output", 3, target=True)],
        [
            Connection("input-hidden0", "input", "hidden0"),
            Connection("hidden0-output", "hidden0", "output"),
            Connection("input-output", "input", "output", w0=0.15),
        ],
        **kw,
    )


def _mixed(**kw: object) -> Network:
    """Fixed and plastic connections mixed: a group fed only by a fixed connection, a fixed path
    to the output beside a plastic one, and a plastic hidden -> hidden connection."""
    return _graph(
        [Group("input", 20, "input"), Group("driven", 7), Group("hidden", 6), Group("output", 3, target=True)],
        [
            Connection("input-driven", "input", "driven", plastic=False),
            Connection("input-hidden", "input", "hidden"),
            Connection("driven-output", "driven", "output"),
            Connection("hidden-output", "hidden", "output", plastic=False),
            Connection("driven-hidden", "driven", "hidden"),
        ],
        **kw,
    )


def _two_inputs(**kw: object) -> Network:
    """Two input groups (the task's ids split over them) and two output groups (its targets)."""
    return _graph(
        [
            Group("a", 12, "input"),
            Group("b", 8, "input"),
            Group("hidden", 8),
            Group("o1", 1, target=True),
            Group("o2", 2, target=True),
        ],
        [
            Connection("a-hidden", "a", "hidden"),
            Connection("b-hidden", "b", "hidden"),
            Connection("hidden-o1", "hidden", "o1"),
            Connection("hidden-o2", "hidden", "o2"),
            Connection("b-o2", "b", "o2", w0=0.2),
        ],
        **kw,
    )


def _output_first(**kw: object) -> Network:
    """A hidden group declared after the output group (so after it in kernel order, too) that
    also receives the output's spikes through a fixed connection; DFA carries its error."""
    return _graph(
        [Group("input", 20, "input"), Group("output", 3, target=True), Group("h", 8)],
        [
            Connection("input-h", "input", "h"),
            Connection("h-output", "h", "output"),
            Connection("output-h", "output", "h", plastic=False),
        ],
        feedback="direct",
        **kw,
    )


def _shared_two_lanes(**kw: object) -> Network:
    """The input feeds a hidden group and the output, which a group with only fixed inputs
    separates in the post space: both plastic connections read one presynaptic segment, whose
    events go to two lanes of the sweep."""
    return _graph(
        [Group("input", 20, "input"), Group("a", 6), Group("driven", 5), Group("output", 3, target=True)],
        [
            Connection("input-a", "input", "a"),
            Connection("input-driven", "input", "driven", plastic=False),
            Connection("input-output", "input", "output", w0=0.15),
            Connection("a-output", "a", "output"),
            Connection("driven-output", "driven", "output", plastic=False),
        ],
        **kw,
    )


def _chain(hidden: tuple[int, ...], **kw: object) -> Network:
    return Network.initialize(NetworkSpec.chain(20, hidden, 3, **kw), 3, 0.3)


GRAPHS = {
    "recurrent": lambda: _chain((8,), recurrent=True),
    # recurrence with fixed feedback, the regulariser, and a longer delay line in the hidden group
    # (its two incoming connections read theirs with D = 15, the output's with 8)
    "recurrent-random-reg-delay": lambda: _chain(
        (8,), recurrent=True, feedback="random", feedback_delay=0.7e-3, regularizer=RegularizerParams()
    ),
    "skip": _skip,
    "two-tau": _two_tau,
    "dfa-two-hidden": lambda: _chain((6, 5), feedback="direct"),
    "dfa-two-hidden-reg": lambda: _chain((6, 5), feedback="direct", regularizer=RegularizerParams()),
    "mixed-fixed-plastic": _mixed,
    "mixed-fixed-plastic-random-reg": lambda: _mixed(feedback="random", regularizer=RegularizerParams()),
    "two-inputs": _two_inputs,
    "two-inputs-dfa": lambda: _two_inputs(feedback="direct"),
    "output-declared-first": _output_first,
    "shared-two-lanes": _shared_two_lanes,
}


@pytest.mark.parametrize("method", ["events", "gemm"])
@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_graph_agrees_with_reference(name: str, method: str) -> None:
    task = small_task()
    net = GRAPHS[name]()
    assert task.nin == net.spec.nin and task.nout == net.spec.nout
    _agree(net, task, method=method)


@pytest.mark.parametrize("name", ["recurrent-random-reg-delay", "mixed-fixed-plastic", "two-inputs"])
def test_graph_agrees_with_odd_chunks(name: str) -> None:
    task = small_task(seed=1)
    _agree(GRAPHS[name](), task, cuts="odd")


@pytest.mark.parametrize(("name", "owners", "copies", "lanes"), [
    ("skip", ["input-hidden0", "hidden0-output"], ["input-output"], 1),
    ("shared-two-lanes", ["input-a", "a-output"], ["input-output"], 2),
    # the hidden group's delay line is longer than the output's: the input's segment is not shared
    ("recurrent-random-reg-delay", ["input-hidden0", "hidden0-output", "hidden0-hidden0"], [], 1),
])  # fmt: skip
def test_connections_from_one_group_share_its_traces(name: str, owners: list, copies: list, lanes: int) -> None:
    """Plastic connections from one group through delay lines of one length share a pre-space
    segment: its traces and events are computed once, the connections' trace fields are copies,
    and a state whose copies differ is refused."""
    net, task = GRAPHS[name](), small_task()
    eng = FastEngine(net, task)
    assert eng.pre_owners == owners and eng.pre_copies == copies
    sizes = {g.name: g.n for g in net.spec.groups}
    pre = {c.name: c.pre for c in net.spec.connections}
    assert eng.NP == sum(sizes[pre[c]] for c in owners)
    assert (eng._lane_pre is not None) == (lanes > 1)
    st = State.initial(net)
    eng.advance(st, 700)
    for c in copies:
        owner = next(o for o in owners if pre[o] == pre[c])
        for f in ("tr_pre", "tr_psp", "psp_line"):
            a, b = getattr(st.conns[c], f), getattr(st.conns[owner], f)
            assert np.count_nonzero(a) and np.array_equal(a, b), f"{c}: {f}"
        st.conns[c].tr_psp[3] += np.float32(0.5)
        with pytest.raises(ValueError, match=f"connection '{c}': its tr_psp differs"):
            eng.advance(st, 10)


# -- corner cases --------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["events", "gemm"])
@pytest.mark.parametrize("reg", [False, True])
def test_network_without_plastic_connections(method: str, reg: bool) -> None:
    """Nothing to sweep (and with the regulariser, only the activity trace h to advance)."""
    kw: dict = dict(feedback="random", regularizer=RegularizerParams()) if reg else {}
    spec = NetworkSpec.chain(20, (8,), 3, **kw)
    spec = spec.replace(connections=tuple(Connection(c.name, c.pre, c.post, plastic=False) for c in spec.connections))
    task = small_task()
    net = Network.initialize(spec, 3, 0.3)
    ref, fast = State.initial(net), State.initial(net)
    ra = ReferenceEngine(net, task).advance(ref, 7001)
    rb = FastEngine(net, task, method=method).advance(fast, 7001)
    assert sum(len(s) for s, _ in ra.spikes.values()) > 20
    for name, (sa, ia) in ra.spikes.items():
        np.testing.assert_array_equal(rb.spikes[name][0], sa)
        np.testing.assert_array_equal(rb.spikes[name][1], ia)
    _compare_states(ref, fast, "after 7001 steps")
    if reg:
        assert np.abs(fast.groups["hidden0"].het).max() > 0


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
    for name, (sa, ia) in ra.spikes.items():
        np.testing.assert_array_equal(rb.spikes[name][0], sa)
        np.testing.assert_array_equal(rb.spikes[name][1], ia)
    _compare_states(ref, fast, "after 12345 steps")


@pytest.mark.parametrize(
    ("ranges", "threads"),
    [([(0, 256), (256, 456)], 2), ([(0, 200)], 2), ([(0, 4096), (4096, 4296)], 2), ([(0, 256), (256, 456)], 1),
     ([(0, 20), (20, 40), (40, 60)], 4), ([(0, 100), (100, 356), (356, 556)], 3), ([(0, 3), (3, 1000)], 4),
     ([(0, 50), (70, 300)], 2)],
)  # fmt: skip
def test_sweep_blocks_cover_columns_once_within_groups(ranges: list[tuple[int, int]], threads: int) -> None:
    blocks = sweep_blocks(ranges, threads)
    assert 1 <= len(blocks) <= threads
    cols = np.concatenate([np.arange(a, b) for blk in blocks for a, b, _ in blk])
    np.testing.assert_array_equal(np.sort(cols), np.concatenate([np.arange(a, b) for a, b in ranges]))
    for blk in blocks:
        for a, b, lane in blk:
            lo, hi = ranges[lane]
            assert lo <= a < b <= hi, f"block {a}-{b} is not within its lane {lane} of {ranges}"
    widths = [sum(b - a for a, b, _ in blk) for blk in blocks]
    if ranges == [(0, 256), (256, 456)] and threads == 2:
        assert widths == [256, 200]  # one group per thread (the measured best for Oxford)
    total = sum(b - a for a, b in ranges)
    if total >= 200 * threads:
        assert max(widths) <= 1.3 * total / threads  # no thread gets far more than its share


def test_sweep_blocks_split_lanes_at_group_boundaries() -> None:
    # an ensemble's lane of 100 groups of 4 columns and one of 100 groups of 1, two threads
    bounds = [*range(0, 400, 4), *range(400, 500)]
    blocks = sweep_blocks([(0, 400), (400, 500)], 2, bounds=bounds)
    pieces = sorted(tuple(int(v) for v in p) for blk in blocks for p in blk)
    assert pieces == [(0, 200, 0), (200, 400, 0), (400, 500, 1)]
    # no boundary inside: the middle
    assert sorted(tuple(int(v) for v in p) for blk in sweep_blocks([(0, 600)], 2, bounds=[0]) for p in blk) == [
        (0, 300, 0),
        (300, 600, 0),
    ]


def test_default_threads_respect_a_fair_share(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NUMBA_NUM_THREADS", raising=False)
    free = default_threads()
    assert 1 <= free <= 4
    monkeypatch.setenv("NUMBA_NUM_THREADS", "1")  # what `superspike sweep` sets with one CPU per worker
    assert default_threads() == 1
    task = small_task()
    assert FastEngine(small_network(task), task).threads == 1


def _chain_or_graph(kind: str, task) -> Network:
    """A 2-hidden-layer chain with random feedback and the regulariser ("chain"), or a recurrent
    hidden group with a skip connection from input to output ("graph"): two plastic connections
    into each of its groups."""
    if kind == "chain":
        return small_network(task, hidden=(70, 40), feedback="random", regularizer=RegularizerParams())
    spec = NetworkSpec.chain(task.nin, (70,), task.nout, recurrent=True, regularizer=RegularizerParams())
    spec = spec.replace(connections=(*spec.connections, Connection("input-output", "input", "output")))
    return Network.initialize(spec, 3, 0.3)


@pytest.mark.parametrize("kind", ["chain", "graph"])
def test_thread_count_does_not_change_results(kind: str) -> None:
    """Columns are swept in blocks per thread; the results must not depend on how many. The graph
    has two plastic connections into each of its groups (recurrence, a skip connection)."""
    task = small_task(seed=4, nout=40, rate=30.0)
    net = _chain_or_graph(kind, task)
    engines = [FastEngine(net, task, threads=t) for t in (1, 2, 3)]
    assert [len(e._blocks) for e in engines] == [1, 2, 3]
    states = [State.initial(net) for _ in engines]
    opt = _optimizer(net.spec)
    for n in _cuts("run", 3 * UPDATE + 1):
        for e, st in zip(engines, states, strict=True):
            e.advance(st, n)
            if (st.clock - 1) % UPDATE == 0:
                _update(opt, st, net.spec)
    ref = states[0].to_arrays()
    assert all(not np.allclose(states[0].conns[n].w, w0) for n, w0 in net.weights.items())
    for st in states[1:]:
        for name, x in st.to_arrays().items():
            np.testing.assert_array_equal(x, ref[name], err_msg=name)


@pytest.mark.parametrize("kind", ["chain", "graph"])
def test_pipelined_schedule_equals_serial(kind: str) -> None:
    """The pipelined schedule (a chunk's plasticity in a worker while the forward kernel runs the
    next chunk, FastEngine._advance_pipelined) gives bit for bit the serial schedule's results:
    spikes, neuron and trace states, eligibility, el_sum and the updated weights. Short chunks, so
    that every advance has several; the graph has a recurrent and a skip connection, the chain the
    regulariser (its activity trace is advanced in the worker)."""
    task = small_task(seed=5, nout=40, rate=30.0)
    net = _chain_or_graph(kind, task)
    engines = [FastEngine(net, task, threads=2, max_block=700, pipeline=p) for p in (False, True)]
    assert FastEngine(net, task, threads=2).pipeline and not FastEngine(net, task, threads=1).pipeline
    calls = []
    engines[1]._advance_pipelined = lambda *a, f=engines[1]._advance_pipelined: calls.append(1) or f(*a)
    states = [State.initial(net) for _ in engines]
    opt = _optimizer(net.spec)
    for n in _cuts("run", 3 * UPDATE + 1):
        out = [e.advance(st, n) for e, st in zip(engines, states, strict=True)]
        for name, (t, i) in out[0].spikes.items():
            np.testing.assert_array_equal(out[1].spikes[name][0], t)
            np.testing.assert_array_equal(out[1].spikes[name][1], i)
        for st in states:
            if (st.clock - 1) % UPDATE == 0:
                _update(opt, st, net.spec)
    assert len(calls) >= 3  # the advances of whole update intervals went through the pipeline
    ref = states[0].to_arrays()
    assert all(not np.allclose(states[0].conns[n].w, w0) for n, w0 in net.weights.items())
    for name, x in states[1].to_arrays().items():
        np.testing.assert_array_equal(x, ref[name], err_msg=name)


def test_engines_interchangeable_mid_run() -> None:
    task = small_task(seed=3)
    net = GRAPHS["recurrent-random-reg-delay"]()
    engines = [ReferenceEngine(net, task), FastEngine(net, task)]
    opt = _optimizer(net.spec)
    pure, mixed = State.initial(net), State.initial(net)
    for k, n in enumerate(_cuts("run", 4 * UPDATE + 1)):
        engines[0].advance(pure, n)
        engines[k % 2].advance(mixed, n)
        if (pure.clock - 1) % UPDATE == 0:
            _update(opt, pure, net.spec)
            _update(opt, mixed, net.spec)
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
            st.conns["hidden1-output"].w[...] = -0.1
        ReferenceEngine(net, task).advance(ref, 5000)
        FastEngine(net, task, method=method).advance(fast, 5000)
        assert np.abs(ref.conns["hidden1-output"].el).max() > 0
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
CONNS = ("input-hidden0", "hidden0-output")
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
    """The engine alone (no run layer), the run loop's chunks, against the recorded run."""
    ref_dir = shared / "reference" / "oxford-burnin"
    data = shared / "ssbm" / "benchmarks" / "precise_timing" / "oxford"
    inp, _, _ = load_raster(data / "input.ras", 200, role="input")
    tgt, _, _ = load_raster(data / "target.ras", 200, drop_out_of_range=True)
    task = Task(inp, tgt, 1.89, "oxford")
    weights = {CONNS[0]: np.load(ref_dir / "w_input_hidden.npy"), CONNS[1]: np.load(ref_dir / "w_hidden_output.npy")}
    if feedback == "symmetric":
        net = Network(NetworkSpec.chain(200, (256,), 200), weights, {})
    else:  # the random-feedback demo: 0.8 ms feedback delay read as 7 steps (SPEC 2.2), regulariser
        spec = NetworkSpec.chain(
            200, (256,), 200, feedback="random", feedback_delay=0.7e-3, regularizer=RegularizerParams()
        )
        net = Network(spec, weights, {"hidden0-output": np.load(ref_dir / "b_output_hidden.npy")})
    engine = FastEngine(net, task)
    state = State.initial(net)
    opt = _optimizer(net.spec)
    spikes: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {"hidden0": [], "output": []}
    for n in _cuts("run", BURN_IN):
        for name, part in engine.advance(state, n).spikes.items():
            spikes[name].append(part)
        if (state.clock - 1) % UPDATE == 0:
            _update(opt, state, net.spec, 1e-3, False)
    for name, group in (("hidden", "hidden0"), ("output", "output")):
        exp_s, exp_i = read_spk(ref_dir / f"{name}.spk", dt=1e-4)
        got_s = np.concatenate([p[0] for p in spikes[group]])
        got_i = np.concatenate([p[1] for p in spikes[group]])
        assert len(got_s) == len(exp_s), name
        np.testing.assert_array_equal(got_s, exp_s, err_msg=name)
        np.testing.assert_array_equal(got_i[np.lexsort((got_i, got_s))], exp_i[np.lexsort((exp_i, exp_s))])
    assert _cost(state, net.spec) == pytest.approx(214.366, rel=1e-3)
    for name, means in zip(CONNS, RECORDED[feedback], strict=True):
        conn = state.conns[name]
        fields = (conn.w, conn.el, conn.el_flt, conn.el_sum, conn.grad2)
        np.testing.assert_allclose([float(np.mean(x, dtype=np.float64)) for x in fields], means, rtol=5e-3)
    # the first update, in step 200000, with learning on
    engine.advance(state, 1)
    _update(opt, state, net.spec, 1e-3, True)
    table = _sampled_weights((ref_dir / "README.md").read_text(), feedback)
    for k, (pre, post, before, after) in enumerate(table):
        name = CONNS[0 if k < 20 else 1]
        assert weights[name][pre, post] == pytest.approx(before, abs=1e-9)
        assert state.conns[name].w[pre, post] == pytest.approx(after, abs=1e-6), f"{name}[{pre}, {post}]"


def test_sweep_rows_give_the_same_bits_however_rows_are_grouped() -> None:
    """The sweep advances rows one, two or four at a time depending on where the events of its
    block lie, and a block holds many groups (an ensemble's copies of a layer): each column's
    recurrences must give the same bits whichever grouping, or a member's results would depend
    on the others' events."""
    from superspike.engine import _fast_kernels as fk

    u64 = np.uint64
    w = n = 64
    rng = np.random.default_rng(1)
    E = (rng.standard_normal(n * w) * (rng.random(n * w) < 0.2)).astype(np.float32)
    S = (rng.random(n * w) * 0.3).astype(np.float32)
    q, d, kk = 1 - 1e-4 / 1e-2, float(np.exp(-1e-4 / 5e-3)), 1e-4 / 1e-2
    cq = kk / (q - d)
    kc = (q, d, cq * q, cq * d, q / d, d / q)

    def run(pattern: list[int]) -> np.ndarray:
        col = np.zeros((10, w))
        k, i = n - 1, 0
        while k >= 0:
            r = min(pattern[i % len(pattern)], k + 1)
            i += 1
            o = u64(k * w)
            if r == 0:
                fk._sweep_row(E, S, o, w, col, kc)  # the delay-line rows' version
                r = 1
            elif r >= 4:
                fk._sweep_rows(E, S, (o, o - u64(w), o - u64(2 * w), o - u64(3 * w)), w, col, kc)
            elif r >= 2:
                r = 2
                fk._sweep_rows(E, S, (o, o - u64(w)), w, col, kc)
            else:
                fk._sweep_rows(E, S, (o,), w, col, kc)
            k -= r
        return col[[fk.EQ, fk.ED, fk.R0, fk.R1, fk.RP, fk.RQ, fk.RC]]

    one = run([1])
    assert np.abs(one).max() > 0
    for pattern in ([4], [2], [0], [4, 1, 2, 1, 1, 4, 0]):
        np.testing.assert_array_equal(run(pattern), one, err_msg=str(pattern))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_runs_the_pipelined_engine() -> None:
    """A child forked after the parent used the thread pool (as the fault-injection tests fork)
    gets pools of its own: the parent's threads do not exist in it, and work given to the
    parent's pool would never be done."""
    task = small_task(seed=5, nout=40, rate=30.0)
    net = _chain_or_graph("chain", task)
    engine = FastEngine(net, task, threads=2, max_block=700)
    assert engine.pipeline
    engine.advance(State.initial(net), 3000)  # the pool exists now, its threads running
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            child = FastEngine(net, task, threads=2, max_block=700)
            child.advance(State.initial(net), 3000)
            code = 0
        finally:
            os._exit(code)
    deadline = time.monotonic() + 120
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung in the engine's thread pool")
        time.sleep(0.05)
    assert os.waitstatus_to_exitcode(status) == 0
