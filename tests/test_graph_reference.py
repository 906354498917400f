"""The reference engine on graphs (docs/MODEL.md, section 4): the step semantics where a graph
differs from a chain.

``_graph_model`` is an independent, plain transcription of one step on a graph (numpy, float32,
loops where the order of float32 sums matters), written from the step semantics, not from the
engine; the engine must match it bit for bit on every state variable for recurrent, skip, DFA, mixed
fixed/plastic, multi-input/output and per-group-tau graphs. Small hand-made cases pin down the
details that can go wrong: delivery order, the delay of a self connection, feedback through
direct matrices, the splitting of the task's input and target ids over several groups.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import small_task

from superspike.engine import ReferenceEngine, State
from superspike.network import Network, NetworkSpec
from superspike.network.graph import Connection, Group
from superspike.params import NeuronParams, RegularizerParams
from superspike.run.simulation import Simulation
from superspike.task import Raster, Replay, Task
from superspike.task.xor import xor_task

f32 = np.float32


def _graph_model(net: Network, task: Task, n_steps: int) -> dict[str, dict[str, np.ndarray]]:
    """n_steps of ``net`` on ``task`` (no weight update), transcribed from the step semantics.

    Returns the final state as {"group/NAME": {...}, "conn/NAME": {...}} and the spikes of every
    LIF group as {"spikes": {name: (steps, n) array}}.
    """
    spec = net.spec
    rule, nrn = spec.rule, spec.neuron
    dt = nrn.dt
    delay = nrn.delay_steps
    d_rise, k_rise = f32(math.exp(-dt / rule.tau_rise)), f32(dt / rule.tau_rise)
    k_decay, d_avg = f32(dt / rule.tau_decay), f32(math.exp(-dt / rule.tau_cost))
    beta, u_cut, err_cut, psp_cut = f32(rule.beta), f32(rule.u_cutoff), f32(rule.error_cutoff), f32(spec.psp_cutoff())
    reg = spec.regularizer
    lag = 1 if spec.feedback == "symmetric" else 1 + delay

    # the task's ids split over the input groups, the target's over the output groups
    inp = Replay.from_raster(task.input, task.grid, dt).counts(0, n_steps)
    tgt = Replay.from_raster(task.target, task.grid, dt).counts(0, n_steps)
    spikes: dict[str, np.ndarray] = {}
    off = 0
    for g in spec.input_groups:
        spikes[g.name] = inp[:, off : off + g.n]
        off += g.n
    toff, off = {}, 0
    for g in spec.output_groups:
        toff[g.name] = off
        off += g.n

    G: dict[str, dict] = {}
    for g in spec.lif_groups:
        p = spec.neuron_of(g)
        D = spec.delay_line_steps(g)
        spikes[g.name] = np.zeros((n_steps, g.n), np.int8)
        G[g.name] = dict(
            u=np.full(g.n, f32(p.u_rest)),
            i_syn=np.zeros(g.n, f32),
            ref=np.zeros(g.n, np.int32),
            err=np.zeros(g.n, f32),
            tr_err=np.zeros(g.n, f32),
            tr_err_flt=np.zeros(g.n, f32),
            avg=np.zeros(g.n, f32),
            het=np.zeros(g.n, f32),
            sig_line=[np.zeros(g.n, f32) for _ in range(D)],
            errs=[],  # err of every step
            k_mem=f32(dt / p.tau_mem),
            d_syn=f32(math.exp(-dt / p.tau_syn)),
            u_rest=f32(p.u_rest),
            thr=f32(p.threshold),
            ref_steps=p.refractory_steps,
        )
    C: dict[str, dict] = {}
    for c in spec.connections:
        w = net.weights[c.name]
        C[c.name] = dict(w=w.copy())
        if c.plastic:
            npre, npost = w.shape
            D = spec.delay_line_steps(c.post)
            C[c.name].update(
                tr_pre=np.zeros(npre, f32),
                tr_psp=np.zeros(npre, f32),
                el=np.zeros((npre, npost), f32),
                el_flt=np.zeros((npre, npost), f32),
                el_sum=np.zeros((npre, npost), f32),
                psp_line=[np.zeros(npre, f32) for _ in range(D)],
            )

    def delayed(name: str, t: int, lag_: int) -> np.ndarray:
        return spikes[name][t - lag_] if t >= lag_ else np.zeros(spikes[name].shape[1], np.int8)

    for t in range(n_steps):
        # neurons (SPEC 1)
        for name, s in G.items():
            s["u"] = s["u"] + s["k_mem"] * ((s["u_rest"] - s["u"]) + s["i_syn"])
            for i in range(s["u"].size):
                if s["ref"][i] == 0 and s["u"][i] > s["thr"]:
                    spikes[name][t, i] = 1
                    s["u"][i] = s["u_rest"]
                    s["ref"][i] = s["ref_steps"]
                elif s["ref"][i] > 0:
                    s["ref"][i] -= 1
                    s["u"][i] = s["u_rest"]
            s["i_syn"] = s["i_syn"] * s["d_syn"]
        # delivery: connections in creation order, pres ascending
        for c in spec.connections:
            pre = delayed(c.pre, t, delay)
            post = G[c.post]
            for j in range(pre.size):
                for _ in range(pre[j]):
                    post["i_syn"] = post["i_syn"] + C[c.name]["w"][j]
        # 1. traces
        for c in spec.plastic_connections:
            s = C[c.name]
            s["tr_pre"] = (s["tr_pre"] + delayed(c.pre, t, delay)) * d_rise
        for name, s in G.items():
            s["tr_err"] = s["tr_err"] + k_rise * (s["err"] - s["tr_err"])
            s["tr_err_flt"] = s["tr_err_flt"] + k_decay * (s["tr_err"] - s["tr_err_flt"])
            if spec.regularized(name):
                s["het"] = (s["het"] + spikes[name][t]) * f32(math.exp(-dt / reg.tau))
        # 2. squared-error average
        for s in G.values():
            s["avg"] = s["avg"] * d_avg + f32(dt) * s["tr_err_flt"] * s["tr_err_flt"]
        # 3. errors: outputs target - own (delayed); hidden: feedback edges, one f32 accumulator
        for g in spec.lif_groups:
            s = G[g.name]
            if g.target:
                own = delayed(g.name, t, delay)
                tg = tgt[t - delay, toff[g.name] : toff[g.name] + g.n] if t >= delay else np.zeros(g.n, np.int8)
                s["err"] = (tg.astype(np.int64) - own).astype(f32)
                continue
            err = np.zeros(g.n, f32)
            for i in range(g.n):
                acc = f32(0)
                for e in spec.feedback_edges:
                    if e.dst != g.name or t < lag:
                        continue
                    up = G[e.src]["errs"][t - lag]
                    F = net.weights[e.via].T if e.via is not None else net.feedback[e.name]  # [src, dst]
                    for k in range(up.size):
                        acc = f32(acc + f32(F[k, i] * up[k]))
                err[i] = acc
            s["err"] = err
        for s in G.values():
            s["errs"].append(s["err"].copy())
        # 4a. sigma' of every LIF group through its delay line
        sig_d = {}
        for name, s in G.items():
            x = f32(1) + np.abs(beta * (s["u"] - s["thr"]))
            sig = np.where(s["u"] < u_cut, f32(0), beta / (x * x)).astype(f32)
            if spec.linear:
                sig = np.ones_like(sig)
            D = len(s["sig_line"])
            sig_d[name] = s["sig_line"][t % D]
            s["sig_line"][t % D] = sig
        # 4a-4d per plastic connection
        for c in spec.plastic_connections:
            s, post = C[c.name], G[c.post]
            D = len(s["psp_line"])
            psp_d = s["psp_line"][t % D]
            s["psp_line"][t % D] = s["tr_psp"].copy()
            s["el"] = s["el"] + np.where(psp_d[:, None] > psp_cut, psp_d[:, None] * sig_d[c.post][None, :], f32(0))
            s["el_flt"] = s["el_flt"] + k_decay * (s["el"] - s["el_flt"])
            s["el"] = s["el"] * d_rise
            r = np.zeros(post["het"].size, f32)
            if spec.regularized(c.post):
                r = f32(reg.strength) * post["het"] ** f32(reg.exponent)
            tref = post["tr_err_flt"]
            term = s["el_flt"] * tref[None, :] - s["w"] * r[None, :]
            s["el_sum"] = np.where(np.abs(tref)[None, :] >= err_cut, s["el_sum"] + term, s["el_sum"])
        # 6. z~ follows z
        for c in spec.plastic_connections:
            s = C[c.name]
            s["tr_psp"] = s["tr_psp"] + k_decay * (s["tr_pre"] - s["tr_psp"])

    out: dict[str, dict] = {"spikes": {g.name: spikes[g.name] for g in spec.lif_groups}}
    for name, s in G.items():
        out[f"group/{name}"] = {k: s[k] for k in ("u", "i_syn", "ref", "err", "tr_err", "tr_err_flt", "avg", "het")}
    for name, s in C.items():
        out[f"conn/{name}"] = {k: v for k, v in s.items() if k != "psp_line"}
    return out


def _check_against_model(net: Network, task: Task, n_steps: int, min_spikes: int = 5) -> State:
    """Run the engine in uneven calls and compare with the model: spikes and state exactly, except
    el_sum under the regulariser (numpy's float32 power h**a may differ from the compiled one in
    the last bit)."""
    model = _graph_model(net, task, n_steps)
    eng = ReferenceEngine(net, task)
    st = State.initial(net)
    got = {g.name: np.zeros((n_steps, g.n), np.int8) for g in net.spec.lif_groups}
    for n in (n_steps // 3, 1, n_steps - n_steps // 3 - 1):
        res = eng.advance(st, n)
        for name, (s, i) in res.spikes.items():
            got[name][s, i] = 1
    for name, exp in model["spikes"].items():
        assert exp.sum() >= min_spikes, f"group {name} should fire in this test"
        np.testing.assert_array_equal(got[name], exp, err_msg=f"spikes of {name}")
    for key, fields in model.items():
        if key == "spikes":
            continue
        kind, name = key.split("/")
        obj = st.groups[name] if kind == "group" else st.conns[name]
        for f, v in fields.items():
            if f == "el_sum" and net.spec.regularizer is not None:
                np.testing.assert_allclose(getattr(obj, f), v, rtol=2e-6, err_msg=f"{key}/{f}")
            else:
                np.testing.assert_array_equal(getattr(obj, f), v, err_msg=f"{key}/{f}")
    return st


def _net(groups: list[Group], conns: list[Connection], seed: int = 3, w0: float = 0.5, **kw) -> Network:
    return Network.initialize(NetworkSpec(tuple(groups), tuple(conns), **kw), seed, w0)


def _task(nin: int, nout: int, seed: int = 1) -> Task:
    return small_task(nin=nin, nout=nout, grid=0.2, seed=seed, rate=30)


# -- whole graphs against the model -------------------------------------------------------------
def _recurrent(feedback: str = "symmetric", **kw) -> Network:
    net = Network.initialize(NetworkSpec.chain(30, (8,), 4, recurrent=True, feedback=feedback, **kw), 3, 0.5)
    assert [c.name for c in net.spec.connections] == ["input-hidden0", "hidden0-output", "hidden0-hidden0"]
    return net


@pytest.mark.parametrize(
    "case",
    ["recurrent", "recurrent_random_reg_delay", "skip", "two_taus", "dfa", "mixed_fixed", "two_inputs_outputs"],
)
def test_engine_matches_graph_model(case: str) -> None:
    task = _task(30, 4)
    inp = Group("input", 30, "input")
    if case == "recurrent":
        net = _recurrent()
    elif case == "recurrent_random_reg_delay":
        net = _recurrent("random", regularizer=RegularizerParams(strength=10.0), feedback_delay=0.3e-3)
    elif case == "skip":
        net = _net(
            [inp, Group("hidden0", 8), Group("output", 4, target=True)],
            [
                Connection("input-hidden0", "input", "hidden0"),
                Connection("hidden0-output", "hidden0", "output"),
                Connection("input-output", "input", "output"),
            ],
        )
    elif case == "two_taus":
        net = _net(
            [
                inp,
                Group("fast", 6, neuron=NeuronParams(tau_mem=5e-3)),
                Group("slow", 5, neuron=NeuronParams(tau_mem=20e-3, threshold=-52e-3)),
                Group("output", 4, target=True),
            ],
            [
                Connection("input-fast", "input", "fast"),
                Connection("input-slow", "input", "slow"),
                Connection("fast-output", "fast", "output"),
                Connection("slow-output", "slow", "output"),
            ],
        )
    elif case == "dfa":
        net = Network.initialize(NetworkSpec.chain(30, (8, 6), 4, feedback="direct"), 3, 0.6)
    elif case == "mixed_fixed":
        net = _net(
            [inp, Group("driven", 7), Group("hidden", 6), Group("output", 4, target=True)],
            [
                Connection("input-driven", "input", "driven", plastic=False),  # fed only by fixed
                Connection("input-hidden", "input", "hidden"),
                Connection("driven-output", "driven", "output"),
                Connection("hidden-output", "hidden", "output", plastic=False),
                Connection("driven-hidden", "driven", "hidden"),
            ],
        )
    else:  # two input groups, two output groups
        net = _net(
            [
                Group("a", 18, "input"),
                Group("b", 12, "input"),
                Group("hidden", 8),
                Group("o1", 1, target=True),
                Group("o2", 3, target=True),
            ],
            [
                Connection("a-hidden", "a", "hidden"),
                Connection("b-hidden", "b", "hidden"),
                Connection("hidden-o1", "hidden", "o1"),
                Connection("hidden-o2", "hidden", "o2"),
                Connection("b-o2", "b", "o2"),
            ],
        )
    st = _check_against_model(net, task, 2500, min_spikes=1)
    for c in net.spec.connections:
        if not c.plastic:
            assert st.conns[c.name].el_sum is None, "a fixed connection has no rule state"
        else:
            assert np.count_nonzero(st.conns[c.name].el_sum), f"{c.name} should learn something"


# -- hand-made cases -------------------------------------------------------------------------------
def _single_input_spike(step: int, nin: int = 1, nout: int = 1, grid: float = 0.05) -> Task:
    return Task(Raster([(step + 0.5) * 1e-4], [0], nin), Raster([], [], nout), grid)


def test_two_connections_into_one_group_deliver_in_creation_order() -> None:
    # float32: (0 + 4e-8) + 1 - 1 = 0, while the reverse order gives (0 - 1 + 1) + 4e-8 = 4e-8
    ws = {"c0": 4e-8, "c1": 1.0, "c2": -1.0}
    spec = NetworkSpec(
        (Group("input", 1, "input"), Group("output", 1, target=True)),
        tuple(Connection(n, "input", "output") for n in ws),
    )
    net = Network(spec, {n: np.array([[w]], f32) for n, w in ws.items()}, {})
    eng = ReferenceEngine(net, _single_input_spike(0))
    st = State.initial(net)
    eng.advance(st, 9)  # the spike of step 0 is delivered in step 8
    assert st.groups["output"].i_syn[0] == (f32(4e-8) + f32(1.0)) + f32(-1.0) == 0
    assert (f32(-1.0) + f32(1.0)) + f32(4e-8) != 0


def test_self_connection_delivers_after_the_axonal_delay() -> None:
    w_in, w_self = 0.5, 0.003
    spec = NetworkSpec.chain(1, (1,), 1, recurrent=True)
    weights = {"input-hidden0": [[w_in]], "hidden0-output": [[0.0]], "hidden0-hidden0": [[w_self]]}
    net = Network(spec, {n: np.array(w, f32) for n, w in weights.items()}, {})
    eng = ReferenceEngine(net, _single_input_spike(0))
    st = State.initial(net)
    h = st.groups["hidden0"]
    i_before = None
    fired = None
    for t in range(60):
        res = eng.advance(st, 1)
        if fired is None and res.spikes["hidden0"][0].size:
            fired = t
        if fired is not None and t == fired + 7:
            i_before = h.i_syn[0]
        if fired is not None and t == fired + 8:
            # the own spike of step `fired` arrives through the self connection 8 steps later
            assert h.i_syn[0] == i_before * f32(math.exp(-1e-4 / 5e-3)) + f32(w_self)
            break
    assert fired is not None and i_before is not None, "the hidden neuron should fire once"


def test_recurrent_connection_carries_no_feedback() -> None:
    net = _recurrent()
    assert [(e.src, e.dst, e.via) for e in net.spec.feedback_edges] == [("output", "hidden0", "hidden0-output")]
    task = _task(30, 4)
    sim = Simulation(net, task, engine="reference")
    sim.run_steps(1000, learning=False)
    hid, out = [], []
    for _ in range(1500):
        sim.engine.advance(sim.state, 1)
        hid.append(sim.state.groups["hidden0"].err.copy())
        out.append(sim.state.groups["output"].err.copy())
    hid, out = np.array(hid), np.array(out)
    assert np.count_nonzero(out) > 3 and np.count_nonzero(hid[1:]) > 3
    w = sim.state.conns["hidden0-output"].w  # [hidden, output]
    np.testing.assert_allclose(hid[1:], out[:-1] @ w.T, rtol=1e-6, atol=1e-9)  # W_out^T err_out(t-1) only
    # the recurrent synapses learn from their post group's error like any incoming synapse
    assert np.count_nonzero(sim.state.conns["hidden0-hidden0"].el_sum)


def test_skip_connection_output_current_is_the_sum_of_both_paths() -> None:
    spec = NetworkSpec(
        (Group("input", 1, "input"), Group("hidden0", 1), Group("output", 1, target=True)),
        (
            Connection("input-hidden0", "input", "hidden0"),
            Connection("hidden0-output", "hidden0", "output"),
            Connection("input-output", "input", "output"),
        ),
    )
    assert [e.name for e in spec.feedback_edges] == ["hidden0-output"], "the skip connection feeds no error back"
    net = Network(spec, {"input-hidden0": [[0.0]], "hidden0-output": [[0.0]], "input-output": [[0.002]]}, {})
    eng = ReferenceEngine(net, _single_input_spike(3))
    st = State.initial(net)
    eng.advance(st, 12)  # delivered in step 11 through the skip connection
    assert st.groups["output"].i_syn[0] == f32(0.002)
    assert st.groups["hidden0"].i_syn[0] == 0


def test_direct_feedback_alignment_timing() -> None:
    task = _task(30, 4)
    net = Network.initialize(NetworkSpec.chain(30, (8, 6), 4, feedback="direct"), 3, 0.6)
    assert sorted(net.feedback) == ["output-hidden0", "output-hidden1"]
    sim = Simulation(net, task, engine="reference")
    sim.run_steps(1000, learning=False)
    errs = {g: [] for g in ("hidden0", "hidden1", "output")}
    for _ in range(1500):
        sim.engine.advance(sim.state, 1)
        for g, lst in errs.items():
            lst.append(sim.state.groups[g].err.copy())
    out = np.array(errs["output"])
    assert np.count_nonzero(out) > 3
    for h in ("hidden0", "hidden1"):
        B = net.feedback[f"output-{h}"]  # [output, hidden]
        hid = np.array(errs[h])
        np.testing.assert_allclose(hid[9:], out[:-9] @ B, rtol=1e-5, atol=1e-6, err_msg=h)  # B^T err_out(t-1-8)
        assert np.count_nonzero(hid) > 3


def test_hidden_group_fed_only_by_fixed_connections() -> None:
    task = _task(30, 4)
    groups = [Group("input", 30, "input"), Group("hidden0", 8), Group("output", 4, target=True)]
    conns = [
        Connection("input-hidden0", "input", "hidden0", plastic=False),
        Connection("hidden0-output", "hidden0", "output"),
    ]
    net = _net(groups, conns)
    sim = Simulation(net, task, engine="reference")
    rec = sim.record()
    sim.run_steps(12001, learning=True, eta=1e-2)
    assert rec.spikes("hidden0")[0].size > 10
    w = sim.weights()
    np.testing.assert_array_equal(w["input-hidden0"], net.weights["input-hidden0"])
    assert not np.array_equal(w["hidden0-output"], net.weights["hidden0-output"])
    cs = sim.state.conns["input-hidden0"]
    assert cs.el is None and cs.tr_pre is None and cs.psp_line is None
    assert np.count_nonzero(sim.state.groups["hidden0"].tr_err_flt), "the hidden group still receives its error"


def _split(net: Network, spec: NetworkSpec, rows: dict[str, tuple[str, slice, slice]]) -> Network:
    """A network under ``spec`` whose connection weights are blocks of ``net``'s."""
    return Network(spec, {n: net.weights[src][r, c] for n, (src, r, c) in rows.items()}, {})


def test_two_input_groups_split_the_input_ids() -> None:
    task = _task(30, 4)
    one = Network.initialize(NetworkSpec.chain(30, (8,), 4), 3, 0.5)
    spec = NetworkSpec(
        (Group("a", 18, "input"), Group("b", 12, "input"), Group("hidden0", 8), Group("output", 4, target=True)),
        (
            Connection("a-hidden0", "a", "hidden0"),
            Connection("b-hidden0", "b", "hidden0"),
            Connection("hidden0-output", "hidden0", "output"),
        ),
    )
    all_ = slice(None)
    two = _split(
        one,
        spec,
        {
            "a-hidden0": ("input-hidden0", slice(0, 18), all_),
            "b-hidden0": ("input-hidden0", slice(18, 30), all_),
            "hidden0-output": ("hidden0-output", all_, all_),
        },
    )
    sims = [Simulation(n, task, engine="reference") for n in (one, two)]
    recs = [s.record() for s in sims]
    for s in sims:
        s.run_steps(11001, learning=True, eta=5e-3)
    # the monitors see the task's input split: ids 0..17 in a, 18..29 in b (local ids)
    s_in, i_in = recs[0].spikes("input")
    for name, lo, hi in (("a", 0, 18), ("b", 18, 30)):
        s, i = recs[1].spikes(name)
        keep = (i_in >= lo) & (i_in < hi)
        assert keep.any()
        np.testing.assert_array_equal(s, s_in[keep])
        np.testing.assert_array_equal(i, i_in[keep] - lo)
    # the same arithmetic in the same order: bit for bit the same network
    for g in ("hidden0", "output"):
        np.testing.assert_array_equal(recs[1].spikes(g)[0], recs[0].spikes(g)[0])
        np.testing.assert_array_equal(recs[1].spikes(g)[1], recs[0].spikes(g)[1])
    w1, w2 = sims[0].weights(), sims[1].weights()
    np.testing.assert_array_equal(np.concatenate([w2["a-hidden0"], w2["b-hidden0"]]), w1["input-hidden0"])
    np.testing.assert_array_equal(w2["hidden0-output"], w1["hidden0-output"])
    assert sims[0].cost() == sims[1].cost()


@pytest.mark.parametrize("task_name", ["poisson", "xor"])
def test_two_output_groups_split_the_target(task_name: str) -> None:
    """Output ids 0..k-1 in o1, k.. in o2: the target (or the windows of opportunity, xor) are
    split the same way, and the hidden error sums both groups' errors in the order of the
    target ids, so the network is bit for bit the one with a single output group."""
    task = _task(30, 4) if task_name == "poisson" else xor_task(3, 1e-4)
    nin, nout = task.nin, task.nout
    k = 1
    one = Network.initialize(NetworkSpec.chain(nin, (6,), nout), 3, 0.5)
    spec = NetworkSpec(
        (
            Group("input", nin, "input"),
            Group("hidden0", 6),
            Group("o1", k, target=True),
            Group("o2", nout - k, target=True),
        ),
        (
            Connection("input-hidden0", "input", "hidden0"),
            Connection("hidden0-o1", "hidden0", "o1"),
            Connection("hidden0-o2", "hidden0", "o2"),
        ),
    )
    all_ = slice(None)
    two = _split(
        one,
        spec,
        {
            "input-hidden0": ("input-hidden0", all_, all_),
            "hidden0-o1": ("hidden0-output", all_, slice(0, k)),
            "hidden0-o2": ("hidden0-output", all_, slice(k, nout)),
        },
    )
    sims = [Simulation(n, task, engine="reference") for n in (one, two)]
    recs = [s.record() for s in sims]
    for s in sims:
        s.run_steps(11001, learning=True, eta=5e-3)
    s_out, i_out = recs[0].spikes("output")
    assert s_out.size > 5
    for name, lo, hi in (("o1", 0, k), ("o2", k, nout)):
        s, i = recs[1].spikes(name)
        keep = (i_out >= lo) & (i_out < hi)
        np.testing.assert_array_equal(s, s_out[keep])
        np.testing.assert_array_equal(i, i_out[keep] - lo)
    st1, st2 = sims[0].state, sims[1].state
    for f in ("err", "tr_err_flt", "avg"):
        joined = np.concatenate([getattr(st2.groups["o1"], f), getattr(st2.groups["o2"], f)])
        np.testing.assert_array_equal(joined, getattr(st1.groups["output"], f), err_msg=f)
    np.testing.assert_array_equal(st2.groups["hidden0"].err_hist, st1.groups["hidden0"].err_hist)
    np.testing.assert_array_equal(st2.window_state, st1.window_state)
    w1, w2 = sims[0].weights(), sims[1].weights()
    np.testing.assert_array_equal(w2["input-hidden0"], w1["input-hidden0"])
    np.testing.assert_array_equal(np.concatenate([w2["hidden0-o1"], w2["hidden0-o2"]], axis=1), w1["hidden0-output"])
    assert sims[1].cost() == sims[0].cost(), "the cost averages over all output neurons"


def test_each_group_integrates_with_its_own_tau_mem() -> None:
    w = 0.004
    spec = NetworkSpec(
        (
            Group("input", 1, "input"),
            Group("fast", 1, neuron=NeuronParams(tau_mem=5e-3)),
            Group("slow", 1, neuron=NeuronParams(tau_mem=20e-3)),
            Group("output", 1, target=True),
        ),
        (
            Connection("input-fast", "input", "fast"),
            Connection("input-slow", "input", "slow"),
            Connection("fast-output", "fast", "output"),
            Connection("slow-output", "slow", "output"),
        ),
        feedback="direct",
    )
    net = Network(spec, {c.name: np.array([[w]], f32) for c in spec.connections}, {
        n: np.ones(s, f32) for n, s in spec.feedback_shapes.items()
    })  # fmt: skip
    eng = ReferenceEngine(net, _single_input_spike(0))
    st = State.initial(net)
    eng.advance(st, 10)  # delivered in step 8, the membranes move in step 9
    rest = f32(-60e-3)
    for name, tau in (("fast", 5e-3), ("slow", 20e-3)):
        u = st.groups[name].u[0]
        assert u == rest + f32(1e-4 / tau) * ((rest - rest) + f32(w)), name
    assert st.groups["output"].u[0] == rest
