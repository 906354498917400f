"""The van Rossum distance of rule/cost.py: the single-exponential case equals Elephant's
``van_rossum_distance`` on random spike trains, and the paper's double-exponential kernel agrees
with a brute-force numerical integral of the filtered trains."""

from __future__ import annotations

import math

import numpy as np
import pytest

from superspike.rule.cost import van_rossum_distance, van_rossum_per_neuron


@pytest.mark.parametrize("tau", [2e-3, 10e-3, 50e-3, 0.5])
def test_single_exponential_equals_elephant(tau: float) -> None:
    neo = pytest.importorskip("neo")
    pq = pytest.importorskip("quantities")
    dissimilarity = pytest.importorskip("elephant.spike_train_dissimilarity")
    rng = np.random.default_rng(round(tau * 1e4))
    for _ in range(20):
        x = np.sort(rng.uniform(0.0, 2.0, rng.integers(0, 30)))
        y = np.sort(rng.uniform(0.0, 2.0, rng.integers(0, 30)))
        # elephant in ms (its own advice against float noise in s); ours in s
        trains = [neo.SpikeTrain(v * 1e3, units="ms", t_stop=2000.0) for v in (x, y)]
        theirs = dissimilarity.van_rossum_distance(trains, time_constant=tau * 1e3 * pq.ms)[0, 1]
        ours = van_rossum_distance(x, y, kernel="single", tau=tau)
        assert ours == pytest.approx(theirs, rel=1e-9, abs=1e-12)


def test_normalisation_one_unmatched_spike_is_one() -> None:
    for kernel in ("single", "double"):
        assert van_rossum_distance(np.array([0.3]), np.array([]), kernel=kernel) == pytest.approx(1.0)
        assert van_rossum_distance(np.array([0.3, 0.7]), np.array([0.3, 0.7]), kernel=kernel) == 0.0
        # two spikes far apart cost sqrt(2) (each unmatched spike adds 1 to D^2)
        assert van_rossum_distance(np.array([0.1]), np.array([0.9]), kernel=kernel) == pytest.approx(math.sqrt(2))
    assert van_rossum_distance(np.array([]), np.array([])) == 0.0


def _brute_force(x: np.ndarray, y: np.ndarray, tau_rise: float, tau_decay: float) -> float:
    h = 2e-6
    t = np.arange(0.0, 1.3, h)

    def filtered(spikes: np.ndarray) -> np.ndarray:
        f = np.zeros_like(t)
        for s in spikes:
            d = np.clip(t - s, 0.0, None)
            f += np.where(t >= s, np.exp(-d / tau_decay) - np.exp(-d / tau_rise), 0.0)
        return f

    def integral(v: np.ndarray) -> float:  # trapezoid rule (np.trapezoid needs numpy 2)
        return float(h * (v.sum() - 0.5 * (v[0] + v[-1])))

    k = np.exp(-t / tau_decay) - np.exp(-t / tau_rise)
    return math.sqrt(integral((filtered(x) - filtered(y)) ** 2) / integral(k**2))


def test_double_exponential_matches_numerical_integral() -> None:
    rng = np.random.default_rng(5)
    for _ in range(3):
        x = np.sort(rng.uniform(0.0, 1.0, rng.integers(1, 8)))
        y = np.sort(rng.uniform(0.0, 1.0, rng.integers(1, 8)))
        exact = van_rossum_distance(x, y, kernel="double", tau_rise=5e-3, tau_decay=10e-3)
        assert exact == pytest.approx(_brute_force(x, y, 5e-3, 10e-3), rel=1e-4)


def test_per_neuron_splits_by_id() -> None:
    xt, xi = np.array([0.1, 0.2, 0.5]), np.array([0, 1, 1])
    yt, yi = np.array([0.1, 0.25]), np.array([0, 1])
    d = van_rossum_per_neuron(xt, xi, yt, yi, 3, kernel="single", tau=10e-3)
    assert d[0] == 0.0 and d[2] == 0.0
    assert d[1] == pytest.approx(van_rossum_distance(np.array([0.2, 0.5]), np.array([0.25]), "single", 10e-3))


def _pairwise(x: np.ndarray, y: np.ndarray, tau_rise: float, tau_decay: float) -> float:
    """The double-exponential distance from every pair of spikes (quadratic; the oracle)."""
    coef, tau = np.array([1.0, -1.0]), np.array([tau_decay, tau_rise])

    def pair_sum(a: np.ndarray, b: np.ndarray) -> float:
        total = 0.0
        for ai in a:
            for bj in b:
                d = bj - ai
                for m in range(2):
                    for n in range(2):
                        w = coef[m] * coef[n] * tau[m] * tau[n] / (tau[m] + tau[n])
                        total += w * math.exp(-abs(d) / (tau[m] if d >= 0 else tau[n]))
        return total

    norm = pair_sum(np.zeros(1), np.zeros(1))
    return math.sqrt(max(pair_sum(x, x) + pair_sum(y, y) - 2 * pair_sum(x, y), 0.0) / norm)


def test_linear_time_sums_equal_the_pairwise_sums() -> None:
    """Unsorted trains, coincident spikes within and across trains, empty trains."""
    rng = np.random.default_rng(3)
    for _ in range(40):
        x = np.round(rng.random(int(rng.integers(0, 25))) * 0.2, 3)
        y = np.round(rng.random(int(rng.integers(0, 25))) * 0.2, 3)
        if len(x) and len(y):
            y[0] = x[0]
        ours = van_rossum_distance(x, y)
        assert ours == pytest.approx(_pairwise(x, y, 5e-3, 10e-3), rel=1e-9, abs=1e-9)
