"""RMSprop's options (its own memory ``rms_tau``, Adam-style bias correction): hand-computed
small arrays, the defaults unchanged, the options through configuration, CLI and simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import one_line_error, small_network, small_task

from superspike.errors import ConfigError
from superspike.optim import Optimizer, RMaxProp, RMSprop, make_optimizer
from superspike.params import RuleParams
from superspike.run.config import RunConfig, config_from_dict, resolve
from superspike.run.simulation import Simulation

f32 = np.float32
N = 5000  # steps per update interval (0.5 s at 0.1 ms)


def _arrays(g: list[float], grad2: list[float] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(w, el_sum, grad2) of a connection whose mean gradient over N steps is ``g``; w = 0."""
    g_a = np.array([g], f32)
    g2 = np.zeros_like(g_a) if grad2 is None else np.array([grad2], f32)
    return np.zeros_like(g_a), (g_a * N).astype(f32), g2


class _OldRMSprop(Optimizer):
    """RMSprop exactly as it was before it had options (the reference's, commented out in its source)."""

    def step(self, w, el_sum, grad2, n_steps, eta, learning, count=None):  # type: ignore[no-untyped-def]
        g = el_sum / f32(n_steps)
        grad2 *= self.gamma
        grad2 += (f32(1) - self.gamma) * g * g
        el_sum[...] = 0
        if learning:
            w += f32(eta) * g / (np.sqrt(grad2) + self.epsilon)
            np.clip(w, -self.w_max, self.w_max, out=w)


def test_default_rmsprop_is_the_reference_one() -> None:
    """Without options, make_optimizer gives the reference's RMSprop: gamma from rule.tau_rms
    (30 s), no correction; after one update from 0 a step is eta / sqrt(1 - gamma) = 7.8 eta."""
    opt = make_optimizer("rmsprop", RuleParams())
    assert isinstance(opt, RMSprop) and not opt.bias_correction
    assert opt.gamma == f32(math.exp(-0.5 / 30))
    w, els, g2 = _arrays([1e-3, -2e-4])
    opt.step(w, els, g2, N, 1e-3, True, count=1)
    step = 1e-3 / math.sqrt(1 - math.exp(-0.5 / 30))
    assert step / 1e-3 == pytest.approx(7.78, abs=0.01)
    np.testing.assert_allclose(w, [[step, -step]], rtol=1e-5)
    # the count changes nothing without the correction
    w2, els2, g22 = _arrays([1e-3, -2e-4])
    opt.step(w2, els2, g22, N, 1e-3, True)
    np.testing.assert_array_equal(w, w2)


def test_default_options_reproduce_the_old_optimizer_bit_for_bit() -> None:
    """A training run with rmsprop and no options gives exactly the weights of the RMSprop
    that had no options; rmaxprop and fixed are untouched by the options' code."""
    task = small_task(nin=20, nout=2, seed=4, rate=30)
    rule = RuleParams()
    runs = {}
    for label, opt in (("old", _OldRMSprop(0.5, rule.tau_rms, 1e-12, rule.w_max)), ("new", "rmsprop")):
        sim = Simulation(small_network(task, hidden=(5,)), task, engine="reference", optimizer=opt)
        sim.run_steps(4 * N + 1, learning=True, eta=5e-3)
        runs[label] = sim.weights()
    for name in runs["old"]:
        np.testing.assert_array_equal(runs["old"][name], runs["new"][name])
    assert any(not np.array_equal(runs["new"][n], small_network(task, hidden=(5,)).weights[n]) for n in runs["new"])
    assert type(make_optimizer("rmaxprop", rule)) is RMaxProp


def test_rms_tau_sets_the_memory() -> None:
    """rms_tau = 5 s: gamma = exp(-0.5 / 5); grad2 = gamma grad2 + (1 - gamma) g^2."""
    opt = make_optimizer("rmsprop", RuleParams(), rms_tau=5.0)
    gamma = math.exp(-0.1)
    assert opt.gamma == f32(gamma)
    w, els, g2 = _arrays([1e-3], [4e-6])
    opt.step(w, els, g2, N, 1e-3, True, count=7)
    expect2 = gamma * 4e-6 + (1 - gamma) * 1e-6
    assert g2[0, 0] == pytest.approx(expect2, rel=1e-5)
    assert w[0, 0] == pytest.approx(1e-3 * 1e-3 / math.sqrt(expect2), rel=1e-5)
    # the rule's tau_rms (shared with RMaxProp) is the default memory, and stays RMaxProp's
    assert make_optimizer("rmsprop", RuleParams(tau_rms=10.0)).gamma == f32(math.exp(-0.05))
    assert make_optimizer("rmaxprop", RuleParams(tau_rms=10.0)).gamma == f32(math.exp(-0.05))


def test_bias_correction_divides_by_one_minus_gamma_to_the_t() -> None:
    """From grad2 = 0, t equal gradients g: the corrected second moment is g^2, every step eta."""
    opt = make_optimizer("rmsprop", RuleParams(), rms_bias_correction=True)
    gamma = float(opt.gamma)
    w, els, g2 = _arrays([2e-3, -5e-4, 0.0])
    for t in (1, 2, 3):
        els[...] = f32(N) * np.array([[2e-3, -5e-4, 0.0]], f32)
        opt.step(w, els, g2, N, 1e-3, True, count=t)
        np.testing.assert_allclose(g2[0, :2], (1 - gamma**t) * np.array([4e-6, 2.5e-7]), rtol=1e-4)
        np.testing.assert_allclose(w[0], [t * 1e-3, -t * 1e-3, 0.0], rtol=1e-4, atol=1e-12)
    # a later update with a different gradient: the hand-computed corrected moment
    before = w.copy()
    grad2 = g2.copy()
    els[...] = f32(N) * np.array([[1e-3, 0.0, 0.0]], f32)
    opt.step(w, els, g2, N, 1e-3, True, count=4)
    m = (gamma * grad2[0, 0] + (1 - gamma) * 1e-6) / (1 - gamma**4)
    assert w[0, 0] - before[0, 0] == pytest.approx(1e-3 * 1e-3 / math.sqrt(m), rel=1e-4)
    assert w[0, 0] - before[0, 0] < 1e-3  # a smaller gradient than the average: a smaller step
    # the stored grad2 is the uncorrected average
    assert g2[0, 0] == pytest.approx(gamma * grad2[0, 0] + (1 - gamma) * 1e-6, rel=1e-5)
    with pytest.raises(ValueError, match="update count"):
        opt.step(*_arrays([1e-3]), N, 1e-3, True)


def test_bias_correction_during_burn_in_only_moves_the_moment() -> None:
    opt = make_optimizer("rmsprop", RuleParams(), rms_bias_correction=True)
    w, els, g2 = _arrays([1e-3])
    opt.step(w, els, g2, N, 1e-3, False)  # no count needed when nothing is learnt
    assert w[0, 0] == 0 and g2[0, 0] > 0 and not els.any()


def test_options_of_other_optimizers_are_refused() -> None:
    for name in ("rmaxprop", "fixed"):
        with pytest.raises(ConfigError, match="rms_tau") as exc:
            make_optimizer(name, RuleParams(), rms_tau=5.0)
        assert exc.value.key == "rms_tau"
        with pytest.raises(ConfigError) as exc:
            make_optimizer(name, RuleParams(), rms_bias_correction=True)
        assert exc.value.key == "rms_bias_correction"


def test_options_in_the_configuration() -> None:
    cfg = config_from_dict({"task": "timing", "optimizer": "rmsprop", "rms_tau": 5, "rms_bias_correction": True})
    assert cfg.rms_tau == 5 and cfg.rms_bias_correction is True
    res = resolve(cfg).config
    assert (res.rms_tau, res.rms_bias_correction) == (5, True)
    # defaults: no correction, the memory of rule.tau_rms (left unset)
    res = resolve(RunConfig(task="timing")).config
    assert res.rms_tau is None and res.rms_bias_correction is False
    for data, key, text in (
        ({"rms_tau": -1.0}, "rms_tau", "positive"),
        ({"rms_tau": "5"}, "rms_tau", "number"),
        ({"rms_bias_correction": 1}, "rms_bias_correction", "true or false"),
    ):
        with pytest.raises(ConfigError, match=text) as exc:
            config_from_dict({"optimizer": "rmsprop", **data}, "my.toml")
        assert exc.value.key == key
    # another optimiser with an RMSprop option: refused once every layer is applied
    with pytest.raises(ConfigError) as exc:
        resolve(RunConfig(task="timing", rms_tau=5.0))
    assert exc.value.key == "rms_tau"


def test_cli_options(capsys: pytest.CaptureFixture[str]) -> None:
    one_line_error(capsys, ["train", "--task", "timing", "--rms-tau", "5"], "rms_tau", "rmsprop")
    one_line_error(capsys, ["train", "--task", "timing", "--rms-bias-correction"], "rms_bias_correction")
    one_line_error(capsys, ["train", "--task", "timing", "--optimizer", "rmsprop", "--rms-tau", "0"], "--rms-tau")


def test_simulation_counts_updates_from_its_clock() -> None:
    """The count given to the optimiser is the number of updates of grad2, the one at step 0 the
    first, whether the run is one call or several (a resumed run continues the count)."""

    class Spy(RMSprop):
        def __init__(self) -> None:
            super().__init__(0.5, 30.0, 1e-12, 0.1, bias_correction=True)
            self.counts: list[int] = []

        def step(self, w, el_sum, grad2, n_steps, eta, learning, count=None):  # type: ignore[no-untyped-def]
            self.counts.append(count)
            super().step(w, el_sum, grad2, n_steps, eta, learning, count)

    task = small_task(nin=20, nout=2, seed=4, rate=30)
    net = small_network(task, hidden=())
    one, parts = Spy(), Spy()
    a = Simulation(net, task, engine="reference", optimizer=one)
    a.run_steps(3 * N + 1, learning=True, eta=1e-3)
    b = Simulation(net, task, engine="reference", optimizer=parts)
    for n in (1, N - 7, 2 * N + 7):
        b.run_steps(n, learning=True, eta=1e-3)
    assert one.counts == parts.counts == [1, 2, 3, 4]
    for name, w in a.weights().items():
        np.testing.assert_array_equal(w, b.weights()[name])
