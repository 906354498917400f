"""The network: a :class:`~superspike.network.graph.NetworkSpec` with its weights.

``weights[name]`` holds connection ``name``'s weights, float32, indexed [pre, post];
``feedback[name]`` the fixed feedback matrices of random, uniform or direct feedback, float32,
indexed [src, dst] (the group whose error is fed back, the hidden group it reaches).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from superspike.errors import ConfigError
from superspike.network.graph import NetworkSpec


@dataclass
class Network:
    """A network spec with its weights and fixed feedback matrices (float32)."""

    spec: NetworkSpec
    weights: dict[str, np.ndarray]
    feedback: dict[str, np.ndarray]

    def __post_init__(self) -> None:
        shapes = self.spec.shapes
        extra = sorted(set(self.weights) - set(shapes))
        if extra:
            raise ConfigError(f"weights.{extra[0]}", f"no such connection; connections: {', '.join(shapes)}")
        for name, shape in shapes.items():
            if name not in self.weights:
                raise ConfigError(f"weights.{name}", "weight matrix missing")
            if np.shape(self.weights[name]) != shape:
                raise ConfigError(f"weights.{name}", f"has shape {np.shape(self.weights[name])}, expected {shape}")
        for name, shape in self.spec.feedback_shapes.items():
            if name not in self.feedback:
                raise ConfigError(f"feedback.{name}", "feedback matrix missing")
            if np.shape(self.feedback[name]) != shape:
                raise ConfigError(f"feedback.{name}", f"has shape {np.shape(self.feedback[name])}, expected {shape}")
        self.weights = {n: np.ascontiguousarray(self.weights[n], dtype=np.float32) for n in shapes}
        self.feedback = {n: np.ascontiguousarray(self.feedback[n], dtype=np.float32) for n in self.spec.feedback_shapes}

    @classmethod
    def initialize(cls, spec: NetworkSpec, seed: int, w0: float = 0.05) -> Network:
        """Draw weights N(0, (w0/sqrt(N_pre))^2) clipped to [-w_max, w_max] (MODEL.md 6.4), connection by
        connection in creation order (each connection's own ``w0`` if set), then the feedback
        matrices (random, direct: N(0, 1); uniform: ones) in the order of ``spec.feedback_edges``,
        all from ``seed``."""
        rng = np.random.default_rng(seed)
        wmax = spec.rule.w_max
        weights = {}
        for c in spec.connections:
            pre, post = spec.shape(c)
            scale = w0 if c.w0 is None else c.w0
            weights[c.name] = np.clip(rng.normal(0.0, scale / np.sqrt(pre), size=(pre, post)), -wmax, wmax).astype(
                np.float32
            )
        feedback = {}
        for name, shape in spec.feedback_shapes.items():
            if spec.feedback == "uniform":
                feedback[name] = np.ones(shape, dtype=np.float32)
            else:
                feedback[name] = rng.normal(0.0, 1.0, size=shape).astype(np.float32)
        return cls(spec, weights, feedback)

    def with_spec(self, spec: NetworkSpec) -> Network:
        """The same weights (copies) under another spec with the same connections."""
        return Network(spec, {n: w.copy() for n, w in self.weights.items()}, dict(self.feedback))
