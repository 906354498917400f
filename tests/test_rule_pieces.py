"""Every piece of SPEC 1 and 2.1, checked against the reference engine.

``_spec_model`` is an independent, deliberately plain transcription of the SPEC text (numpy,
one step at a time, float32) for a network without hidden layer; the engine must match it on
every state variable. Further tests pin down delays, refractoriness, feedback timing, the
regulariser trace, the surrogate, the optimiser, replay, the cost and the schedule.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import small_task

from superspike.engine import ReferenceEngine, State
from superspike.network import Network, NetworkSpec
from superspike.optim import RMaxProp, RMSprop
from superspike.params import NeuronParams, RegularizerParams, RuleParams, cost_scale, steps
from superspike.rule import reported_mse, surrogate_array
from superspike.run.schedule import Schedule
from superspike.run.simulation import Simulation
from superspike.task import Raster, Replay, Task

f32 = np.float32


def _chain(task: Task, hidden: tuple[int, ...] = (8,), seed: int = 3, w0: float = 0.3, **kw) -> Network:
    """A small chain network for ``task`` with weights large enough to make neurons fire."""
    return Network.initialize(NetworkSpec.chain(task.nin, hidden, task.nout, **kw), seed, w0)


def _one_to_one(w: float, **kw) -> Network:
    """One input neuron onto one output neuron with weight ``w``."""
    return Network(NetworkSpec.chain(1, (), 1, **kw), {"input-output": np.array([[w]], f32)}, {})


def _spec_model(task: Task, w: np.ndarray, n_steps: int) -> dict[str, np.ndarray]:
    """SPEC 1 + 2.1 for input -> output, written from the SPEC's text, not from the engine."""
    nrn = NeuronParams()
    dt = nrn.dt
    nin, nout = w.shape
    inp = Replay.from_raster(task.input, task.grid, dt).counts(0, n_steps)
    tgt = Replay.from_raster(task.target, task.grid, dt).counts(0, n_steps)
    out = np.zeros((n_steps, nout), np.int8)
    U = np.full(nout, f32(nrn.u_rest))
    I = np.zeros(nout, f32)
    ref = np.zeros(nout, int)
    z = np.zeros(nin, f32)
    zt = np.zeros(nin, f32)
    el = np.zeros((nin, nout), f32)
    elf = np.zeros((nin, nout), f32)
    els = np.zeros((nin, nout), f32)
    err = np.zeros(nout, f32)
    tre = np.zeros(nout, f32)
    tref = np.zeros(nout, f32)
    avg = np.zeros(nout, f32)
    D = 8
    sig_line = [np.zeros(nout, f32) for _ in range(D)]
    psp_line = [np.zeros(nin, f32) for _ in range(D)]
    k_mem, d_syn = f32(dt / nrn.tau_mem), f32(math.exp(-dt / nrn.tau_syn))
    d5, k5, k10 = f32(math.exp(-dt / 5e-3)), f32(dt / 5e-3), f32(dt / 10e-3)
    d_avg = f32(math.exp(-dt / 10.0))
    for t in range(n_steps):
        # SPEC 1: U += dt/tau_mem ((U_rest - U) + I); threshold / refractory; I decays
        U = U + k_mem * ((f32(nrn.u_rest) - U) + I)
        for i in range(nout):
            if ref[i] == 0 and U[i] > f32(nrn.threshold):
                out[t, i] = 1
                U[i] = f32(nrn.u_rest)
                ref[i] = 50
            elif ref[i] > 0:
                ref[i] -= 1
                U[i] = f32(nrn.u_rest)
        I = I * d_syn
        # a spike emitted in step s is delivered in step s + 8, after the neuron update
        if t >= 8:
            for j in range(nin):
                for _ in range(inp[t - 8, j]):
                    I = I + w[j]
        n_pre = inp[t - 8] if t >= 8 else np.zeros(nin, np.int8)
        # 1. traces
        z = (z + n_pre) * d5
        tre = tre + k5 * (err - tre)
        tref = tref + k10 * (tre - tref)
        # 2. squared-error average
        avg = avg * d_avg + f32(dt) * tref * tref
        # 3. error of the output: target - own, both 8 steps ago
        err = (tgt[t - 8] - out[t - 8]).astype(f32) if t >= 8 else np.zeros(nout, f32)
        # 4a. delay lines (D = 8): value pushed D steps ago
        x = np.float32(1) + np.abs(f32(1e3) * (U - f32(nrn.threshold)))
        sig = np.where(U < f32(-80e-3), f32(0), f32(1e3) / (x * x)).astype(f32)
        sig_d, psp_d = sig_line[t % D], psp_line[t % D]
        sig_line[t % D], psp_line[t % D] = sig, zt.copy()
        # 4b. coincidence, pres above the cut-off
        el = el + np.where(psp_d[:, None] > f32(1e-7), psp_d[:, None] * sig_d[None, :], f32(0))
        # 4c. filter
        elf = elf + k10 * (el - elf)
        el = el * d5
        # 4d. accumulate, posts with an error only
        els = els + np.where(np.abs(tref)[None, :] >= f32(1e-7), elf * tref[None, :], f32(0))
        # 6. z~ follows z
        zt = zt + k10 * (z - zt)
    return dict(
        out=out,
        u=U,
        i_syn=I,
        tr_pre=z,
        tr_psp=zt,
        el=el,
        el_flt=elf,
        el_sum=els,
        err=err,
        tr_err=tre,
        tr_err_flt=tref,
        avg=avg,
    )


@pytest.mark.parametrize("engine", ["reference", "fast"])
def test_engine_matches_spec_transcription(engine: str) -> None:
    task = small_task(nin=12, nout=3, grid=0.15, seed=4, rate=40)
    spec = NetworkSpec.chain(task.nin, (), task.nout)
    net = Network.initialize(spec, 5, w0=0.6)
    n = 3000
    model = _spec_model(task, net.weights["input-output"], n)
    sim = Simulation(net, task, engine=engine)
    rec = sim.record()
    sim.run_steps(n, learning=False)  # updates at 0 and 1000, 2000 reset el_sum; redo below
    s, i = rec.spikes("output")
    got = np.zeros((n, task.nout), np.int8)
    got[s, i] = 1
    assert model["out"].sum() > 5, "the test network should fire"
    np.testing.assert_array_equal(got, model["out"])
    conn, grp = sim.state.conns["input-output"], sim.state.groups["output"]
    for name in ("tr_pre", "tr_psp", "el", "el_flt"):
        np.testing.assert_allclose(getattr(conn, name), model[name], rtol=1e-5, atol=1e-9, err_msg=name)
    for name in ("err", "tr_err", "tr_err_flt", "avg"):
        np.testing.assert_allclose(getattr(grp, name), model[name], rtol=1e-5, atol=1e-9, err_msg=name)
    np.testing.assert_allclose(grp.u, model["u"], rtol=1e-6)
    np.testing.assert_allclose(grp.i_syn, model["i_syn"], rtol=1e-6)

    # el_sum without the resets of step 5: one chunk, no update in between
    sim2 = Simulation(net, task, engine=engine)
    sim2.engine.advance(sim2.state, n)
    np.testing.assert_allclose(sim2.state.conns["input-output"].el_sum, model["el_sum"], rtol=1e-4, atol=1e-6)


def _one_input_task(step: int, grid: float = 0.05, nout: int = 1) -> Task:
    dt = 1e-4
    return Task(Raster([(step + 0.5) * dt], [0], 1), Raster([], [], nout), grid)


def test_spike_delivery_takes_eight_steps() -> None:
    task = _one_input_task(10)
    net = _one_to_one(0.004)
    eng = ReferenceEngine(net, task)
    st = State.initial(net)
    out = st.groups["output"]
    eng.advance(st, 18)  # steps 0..17: the spike of step 10 is delivered in step 18
    assert out.i_syn[0] == 0
    eng.advance(st, 1)  # step 18: delivered after the neuron update
    assert out.i_syn[0] == f32(0.004)
    assert out.u[0] == f32(-60e-3)
    eng.advance(st, 1)  # step 19: the membrane moves, then the current decays
    assert out.u[0] == f32(-60e-3) + f32(0.01) * ((f32(-60e-3) - f32(-60e-3)) + f32(0.004))
    assert out.i_syn[0] == f32(0.004) * f32(math.exp(-1e-4 / 5e-3))


def test_refractory_period_clamps_membrane_for_50_steps() -> None:
    dt = 1e-4
    # an input spike every step drives the neuron hard
    task = Task(Raster((np.arange(500) + 0.5) * dt, np.zeros(500, int), 1), Raster([], [], 1), 0.05)
    net = _one_to_one(0.1)
    sim = Simulation(net, task, engine="reference")
    rec = sim.record()
    us = []
    for _ in range(400):
        sim.run_steps(1, learning=False)
        us.append(sim.state.groups["output"].u[0])
    s, _ = rec.spikes("output")
    assert len(s) >= 3
    assert set(np.diff(s)) == {51}, "driven hard, a neuron fires every 1 + 50 refractory steps"
    for k in range(1, 51):
        assert us[s[0] + k] == f32(-60e-3)


def test_threshold_is_strict() -> None:
    nrn = NeuronParams()
    th, rest = f32(nrn.threshold), f32(nrn.u_rest)
    net = _one_to_one(0.0)
    eng = ReferenceEngine(net, _one_input_task(0))
    for u0, fires in ((th, False), (np.nextafter(th, f32(1)), True)):
        st = State.initial(net)
        st.groups["output"].u[:] = u0
        st.groups["output"].i_syn[:] = -(rest - u0)  # (U_rest - U) + I = 0: U stays where it is
        res = eng.advance(st, 1)
        assert (res.spikes["output"][0].size == 1) == fires


def _err_series(feedback: str) -> tuple[Simulation, np.ndarray, np.ndarray]:
    """Hidden and output errors, step by step over a window with output activity."""
    task = small_task(nin=30, nout=4, grid=0.2, seed=1, rate=30)
    net = _chain(task, hidden=(6,), w0=0.5, feedback=feedback)
    sim = Simulation(net, task, engine="reference")
    sim.run_steps(1000, learning=False)
    hid, out = [], []
    for _ in range(1500):
        sim.engine.advance(sim.state, 1)
        hid.append(sim.state.groups["hidden0"].err.copy())
        out.append(sim.state.groups["output"].err.copy())
    return sim, np.array(hid), np.array(out)


def test_symmetric_feedback_arrives_one_step_later() -> None:
    sim, hid, out = _err_series("symmetric")
    assert np.count_nonzero(out) > 3, "the test needs output errors"
    w = sim.state.conns["hidden0-output"].w  # [hidden, output]
    expected = out[:-1] @ w.T  # err_hid(t) = W_out^T err_out(t - 1)
    np.testing.assert_allclose(hid[1:], expected, rtol=1e-6, atol=1e-9)


def test_random_feedback_travels_like_a_spike() -> None:
    sim, hid, out = _err_series("random")
    assert np.count_nonzero(out) > 3, "the test needs output errors"
    B = sim.network.feedback["hidden0-output"]  # [output, hidden]
    expected = out[:-9] @ B  # err_hid(t) = B^T err_out(t - 1 - 8)
    np.testing.assert_allclose(hid[9:], expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(hid[1:], out[:-1] @ B), "not the symmetric timing"


def test_feedback_matrices() -> None:
    task = small_task()
    rnd = _chain(task, hidden=(5, 4), feedback="random", seed=9)
    again = _chain(task, hidden=(5, 4), feedback="random", seed=9)
    uni = _chain(task, hidden=(5, 4), feedback="uniform")
    # [src, dst]: the error of the connection's post group, fed to its pre group
    assert set(rnd.feedback) == {"hidden0-hidden1", "hidden1-output"}
    assert rnd.feedback["hidden0-hidden1"].shape == (4, 5) and rnd.feedback["hidden1-output"].shape == (3, 4)
    np.testing.assert_array_equal(rnd.feedback["hidden1-output"], again.feedback["hidden1-output"])
    assert abs(float(rnd.feedback["hidden0-hidden1"].std()) - 1) < 0.6
    assert all((b == 1).all() for b in uni.feedback.values())
    assert _chain(task, hidden=(5,)).feedback == {}


def test_feedback_delay_lengthens_hidden_delay_lines_only() -> None:
    spec = NetworkSpec.chain(3, (4, 5), 2, feedback="random", feedback_delay=0.7e-3)
    assert [spec.delay_line_steps(g) for g in ("hidden0", "hidden1", "output")] == [15, 15, 8]
    assert steps(0.8e-3, 1e-4) == 8 and steps(1.89, 1e-4) == 18899


def test_regulariser_trace_follows_own_spikes_undelayed() -> None:
    task = small_task(nin=30, nout=3, seed=2, rate=30)
    net = _chain(task, hidden=(6,), w0=0.5, regularizer=RegularizerParams(tau=50e-3))
    sim = Simulation(net, task, engine="reference")
    rec = sim.record()
    n = 1500
    sim.run_steps(n, learning=False)
    s, i = rec.spikes("hidden0")
    assert s.size > 0
    h = np.zeros(6, f32)
    d = f32(math.exp(-1e-4 / 50e-3))
    counts = np.zeros((n, 6), f32)
    counts[s, i] = 1
    for t in range(n):
        h = (h + counts[t]) * d
    np.testing.assert_allclose(sim.state.groups["hidden0"].het, h, rtol=1e-5)
    assert not sim.state.groups["output"].het.any(), "the output layer carries no regulariser"


def test_regulariser_pulls_weights_of_active_neurons() -> None:
    task = small_task(nin=30, nout=3, seed=2, rate=30)
    base = _chain(task, hidden=(6,), w0=0.5)
    reg = base.with_spec(base.spec.replace(regularizer=RegularizerParams(strength=1e3)))
    a, b = Simulation(base, task, engine="reference"), Simulation(reg, task, engine="reference")
    a.run_steps(5001, learning=False)
    b.run_steps(5000, learning=False)
    # el_sum differs by -rho w sum_t h^a on active posts: opposite sign to w where it dominates
    diff = b.state.conns["input-hidden0"].el_sum - a.state.conns["input-hidden0"].el_sum
    big = np.abs(diff) > 1e-3
    assert big.any()
    assert (np.sign(diff[big]) == -np.sign(base.weights["input-hidden0"][big])).all()


def test_surrogate() -> None:
    th, beta = -50e-3, 1e3
    u = np.array([-50e-3, -49e-3, -51e-3, -79.9e-3, -80.1e-3], f32)
    s = surrogate_array(u, th, beta, -80e-3)
    assert s[0] == pytest.approx(1e3)
    assert s[1] == pytest.approx(1e3 / 4, rel=1e-4) and s[2] == pytest.approx(s[1], rel=1e-5)
    assert s[3] > 0 and s[4] == 0


def test_linear_mode_uses_unit_surrogate() -> None:
    task = small_task(nin=5, nout=2, seed=3)
    lin = Network.initialize(NetworkSpec.chain(5, (), 2, linear=True), 1, 0.3)
    eng = ReferenceEngine(lin, task)
    st = State.initial(lin)
    eng.advance(st, 800)
    assert (st.groups["output"].sig_line == 1).all()


def _arrays(g: np.ndarray, grad2: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(w, el_sum, grad2) of a connection whose mean gradient over 5000 steps is ``g``."""
    return w.copy(), (g * 5000).astype(f32), grad2.copy()


def test_rmaxprop() -> None:
    opt = RMaxProp(0.5, 30.0, 1e-12, 0.1)
    gamma = f32(math.exp(-0.5 / 30))
    g = np.array([[2e-3, -1e-4, 0.0]], f32)
    grad2 = np.array([[1e-6, 1e-6, 0.0]], f32)
    w = np.array([[0.0, 0.0995, 0.05]], f32)
    cw, els, g2 = _arrays(g, grad2, w)
    opt.step(cw, els, g2, 5000, 1e-3, learning=False)
    np.testing.assert_allclose(g2, np.maximum(g * g, gamma * grad2))
    np.testing.assert_array_equal(cw, w)
    assert not els.any()
    cw, els, g2 = _arrays(g, grad2, w)
    opt.step(cw, els, g2, 5000, 1e-3, learning=True)
    assert cw[0, 0] == pytest.approx(1e-3)  # g^2 dominates: |dw| = eta
    assert cw[0, 1] == pytest.approx(0.0995 - 1e-3 * 1e-4 / math.sqrt(gamma * 1e-6), rel=1e-4)
    assert cw[0, 2] == f32(0.05)  # no gradient, no change
    cw, els, g2 = _arrays(np.array([[1.0]], f32), np.array([[0.0]], f32), np.array([[0.0999]], f32))
    opt.step(cw, els, g2, 5000, 1e-3, learning=True)
    assert cw[0, 0] == f32(0.1)  # clipped to w_max


def test_rmsprop_running_average() -> None:
    opt = RMSprop(0.5, 30.0, 1e-12, 0.1)
    gamma = f32(math.exp(-0.5 / 30))
    cw, els, g2 = _arrays(np.array([[1e-3]], f32), np.array([[4e-6]], f32), np.zeros((1, 1), f32))
    opt.step(cw, els, g2, 5000, 1e-3, learning=True)
    assert g2[0, 0] == pytest.approx(gamma * 4e-6 + (1 - gamma) * 1e-6, rel=1e-5)


def test_optimiser_leaves_fixed_connections_alone() -> None:
    """Step 5 is for plastic connections: a fixed one keeps its weights and has no rule state."""
    task = small_task(nin=30, nout=3, seed=2, rate=30)
    net = _chain(task, hidden=(6,), w0=0.5, fixed_hidden=True)
    sim = Simulation(net, task, engine="reference")
    sim.run_steps(10001, learning=True, eta=1e-2)
    w = sim.weights()
    assert list(w) == ["input-hidden0", "hidden0-output"]
    np.testing.assert_array_equal(w["input-hidden0"], net.weights["input-hidden0"])
    assert sim.state.conns["input-hidden0"].el_sum is None
    assert not np.array_equal(w["hidden0-output"], net.weights["hidden0-output"])


def test_replay_on_loop_grid() -> None:
    dt = 1e-4
    r = Raster([0.0, 0.00015, 1.8898], [1, 0, 2], 3)
    rp = Replay.from_raster(r, 1.89, dt)
    assert rp.period == 18899
    s, i = rp.events(0, 2 * 18899 + 2)
    np.testing.assert_array_equal(s, [0, 1, 18898, 18899, 18900, 2 * 18898 + 1, 2 * 18899, 2 * 18899 + 1])
    np.testing.assert_array_equal(i, [1, 0, 2, 1, 0, 2, 1, 0])
    s, i = rp.events(18900, 18901)
    np.testing.assert_array_equal(s, [18900])


def test_cost_scale_and_reported_mse() -> None:
    rule = RuleParams()
    assert cost_scale(rule) == pytest.approx(1.2e6)
    avg = np.array([1e-5, 3e-5], f32)
    assert reported_mse(avg, 20.0, rule) == pytest.approx(1.2e6 * 2e-5 / (1 - math.exp(-2) + 1e-9), rel=1e-6)


def test_oxford_schedule() -> None:
    sch = Schedule.create(20.0, 20.0, 50, 1.89, 1e-4, 1e-3)
    assert sch.training_end == 10_200_000
    assert sch.end == 541 * 18899  # the current loop period is completed, then one full period
    assert sch.block_eta(19) == 1e-3 and sch.block_eta(20) == pytest.approx(1e-4) and sch.block_eta(49) == 1e-4
