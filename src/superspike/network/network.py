"""The network: layer sizes, feedback strategy, model constants, and its weights.

Layers are numbered 0 (input) .. L (output); connection c runs from layer c to layer c + 1 and
its weights ``w[c]`` are indexed [pre, post]. Feedback matrices ``b[c]`` (random or uniform
feedback, SPEC 2.2) carry the error of connection c's post layer down to layer c, indexed
[upper, lower].
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from superspike.errors import ConfigError
from superspike.params import NeuronParams, RegularizerParams, RuleParams, steps

FEEDBACK_MODES = ("symmetric", "random", "uniform")


@dataclass(frozen=True)
class NetworkSpec:
    """Architecture and constants of a SuperSpike network.

    ``feedback_delay`` (s) adds steps to the hidden layers' delay lines (SPEC 2.2);
    ``regularizer`` (SPEC 2.3) applies to hidden layers only; ``fixed_hidden`` turns hidden
    plasticity off; ``linear`` sets sigma' = 1 (a control of the paper's Fig. 7).
    """

    nin: int
    hidden: tuple[int, ...]
    nout: int
    feedback: str = "symmetric"
    feedback_delay: float = 0.0
    regularizer: RegularizerParams | None = None
    fixed_hidden: bool = False
    linear: bool = False
    neuron: NeuronParams = field(default_factory=NeuronParams)
    rule: RuleParams = field(default_factory=RuleParams)

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        for key, n in (("nin", self.nin), ("nout", self.nout)):
            if int(n) != n or n < 1:
                raise ConfigError(key, f"must be a positive number of neurons, got {n}")
        for h in self.hidden:
            if h < 1:
                raise ConfigError("hidden", f"layer sizes must be positive, got {h}")
        if self.feedback not in FEEDBACK_MODES:
            raise ConfigError("feedback", f"must be one of {', '.join(FEEDBACK_MODES)}, got {self.feedback!r}")
        if self.feedback_delay < 0:
            raise ConfigError("feedback_delay", "must not be negative")
        interval = self.rule.update_interval / self.neuron.dt
        if abs(interval - round(interval)) > 1e-6:
            raise ConfigError("rule.update_interval", "must be a whole number of time steps")

    @property
    def sizes(self) -> tuple[int, ...]:
        """Group sizes, input to output."""
        return (self.nin, *self.hidden, self.nout)

    @property
    def n_connections(self) -> int:
        """Number of plastic connections (hidden layers + 1)."""
        return len(self.hidden) + 1

    @property
    def shapes(self) -> list[tuple[int, int]]:
        """Weight shapes [pre, post] of each connection."""
        s = self.sizes
        return [(s[c], s[c + 1]) for c in range(self.n_connections)]

    @property
    def feedback_shapes(self) -> dict[int, tuple[int, int]]:
        """Shapes [upper, lower] of the fixed feedback matrices (none for symmetric feedback)."""
        if self.feedback == "symmetric":
            return {}
        s = self.sizes
        return {c: (s[c + 1], s[c]) for c in range(1, self.n_connections)}

    @property
    def update_steps(self) -> int:
        """Steps per weight update interval (5000 by default)."""
        return round(self.rule.update_interval / self.neuron.dt)

    def delay_line_steps(self, c: int) -> int:
        """D of SPEC 2.1 for connection c: axonal delay, plus the feedback delay for hidden layers."""
        d = self.neuron.delay_steps
        if c < self.n_connections - 1:
            d += steps(self.feedback_delay, self.neuron.dt)
        return d

    def feedback_lag(self) -> int:
        """Steps between an error and its arrival one layer down (SPEC 2.2): 1, or 1 + delay."""
        return 1 if self.feedback == "symmetric" else 1 + self.neuron.delay_steps

    def regularized(self, c: int) -> bool:
        """Whether connection c (into a hidden layer) carries the activity regulariser."""
        return self.regularizer is not None and c < self.n_connections - 1

    def plastic(self, c: int) -> bool:
        """Whether connection c learns (all do, except hidden ones with ``fixed_hidden``)."""
        return not (self.fixed_hidden and c < self.n_connections - 1)


@dataclass
class Network:
    """A network spec with its weights (float32, [pre, post]) and feedback matrices."""

    spec: NetworkSpec
    weights: list[np.ndarray]
    feedback: dict[int, np.ndarray]

    def __post_init__(self) -> None:
        if len(self.weights) != self.spec.n_connections:
            raise ConfigError("weights", f"expected {self.spec.n_connections} weight matrices, got {len(self.weights)}")
        for c, (w, shape) in enumerate(zip(self.weights, self.spec.shapes, strict=True)):
            if w.shape != shape:
                raise ConfigError(f"w{c}", f"has shape {w.shape}, expected {shape}")
        for c, shape in self.spec.feedback_shapes.items():
            if c not in self.feedback:
                raise ConfigError(f"b{c}", "feedback matrix missing")
            if self.feedback[c].shape != shape:
                raise ConfigError(f"b{c}", f"has shape {self.feedback[c].shape}, expected {shape}")
        self.weights = [np.ascontiguousarray(w, dtype=np.float32) for w in self.weights]
        self.feedback = {c: np.ascontiguousarray(b, dtype=np.float32) for c, b in self.feedback.items()}

    @classmethod
    def initialize(cls, spec: NetworkSpec, seed: int, w0: float = 0.05) -> Network:
        """Draw weights N(0, (w0/sqrt(N_pre))^2) clipped to [-w_max, w_max] (SPEC 3), and the
        feedback matrices (random: N(0, 1); uniform: ones), all from ``seed``."""
        rng = np.random.default_rng(seed)
        wmax = spec.rule.w_max
        weights = [
            np.clip(rng.normal(0.0, w0 / np.sqrt(pre), size=(pre, post)), -wmax, wmax).astype(np.float32)
            for pre, post in spec.shapes
        ]
        feedback = {}
        for c, shape in spec.feedback_shapes.items():
            if spec.feedback == "random":
                feedback[c] = rng.normal(0.0, 1.0, size=shape).astype(np.float32)
            else:
                feedback[c] = np.ones(shape, dtype=np.float32)
        return cls(spec, weights, feedback)

    def with_spec(self, **changes: object) -> Network:
        """The same weights under a modified spec."""
        return Network(replace(self.spec, **changes), [w.copy() for w in self.weights], dict(self.feedback))
