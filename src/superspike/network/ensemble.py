"""Ensembles: several independent networks as one graph (docs/SWEEPS.md, "Ensembles").

Member k's groups and connections are renamed ``m<k>.<name>``; the combined graph has no
connection between members, so every neuron, synapse and feedback edge computes exactly what it
computes alone: the engines take any graph (MODEL.md 4), and the per-neuron and per-synapse
arithmetic of a group depends only on the group, its connections and its feedback edges, whose
order within a member is kept. The task is combined the same way: member k's input ids follow
those of members 0..k-1, likewise its target ids (the kernel order of groups, MODEL.md 4.2, puts
the input groups first, then the LIF groups, each in declaration order, which is member order).

What must be shared, and is checked (:func:`ensemble_key`): the model constants, the loop grid
and time step, and the kind of feedback. Symmetric feedback (the error one step late through the
weights) and fixed matrices (random, uniform: 1 + the axonal delay late, and another PSP
cut-off, MODEL.md 2.6 and 4.5) are constants of the whole graph, so random and uniform members
can share an ensemble (each keeps its own matrices), symmetric ones form their own. Direct
feedback is not combined: it joins every hidden group to every output group of the graph.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from superspike.errors import ConfigError
from superspike.network.graph import Connection, Group, NetworkSpec
from superspike.network.network import Network
from superspike.task.raster import Raster, Task

__all__ = ["Ensemble", "combine", "feedback_kind", "member_prefix"]


def member_prefix(k: int) -> str:
    """Prefix of member k's group and connection names in the combined graph."""
    return f"m{k}."


def feedback_kind(spec: NetworkSpec) -> str:
    """What the combined graph must share about feedback: "symmetric", "fixed" (random and
    uniform) or "direct"."""
    return {"random": "fixed", "uniform": "fixed"}.get(spec.feedback, spec.feedback)


def _kind_mode(kind: str) -> str:
    return {"fixed": "random"}.get(kind, kind)


def _combined_spec(specs: list[NetworkSpec]) -> NetworkSpec:
    first = specs[0]
    kind = feedback_kind(first)
    if kind == "direct":
        raise ConfigError("ensemble", "direct feedback joins all groups of a graph; such networks run alone")
    for k, s in enumerate(specs[1:], 1):
        for key in ("neuron", "rule", "regularizer", "linear", "feedback_delay"):
            if getattr(s, key) != getattr(first, key):
                raise ConfigError("ensemble", f"member {k} differs from member 0 in {key}")
        if feedback_kind(s) != kind:
            raise ConfigError("ensemble", f"member {k} has {s.feedback} feedback, member 0 {first.feedback}")
        if first.psp_cutoff() != s.psp_cutoff():
            raise ConfigError("ensemble", f"member {k} has another PSP cut-off than member 0")
    groups: list[Group] = []
    conns: list[Connection] = []
    for k, s in enumerate(specs):
        p = member_prefix(k)
        groups += [Group(p + g.name, g.n, g.kind, g.target, g.neuron) for g in s.groups]
        conns += [Connection(p + c.name, p + c.pre, p + c.post, c.plastic, c.w0) for c in s.connections]
    combined = first.replace(groups=tuple(groups), connections=tuple(conns), feedback=_kind_mode(kind))
    # the combined constants must be each member's (the PSP cut-off and the lag depend on the mode)
    if combined.psp_cutoff() != first.psp_cutoff() or combined.feedback_lag() != first.feedback_lag():
        raise ConfigError("ensemble", "the members' feedback constants cannot be shared")  # pragma: no cover
    return combined


def _concat(rasters: list[Raster], what: str) -> Raster:
    off = np.cumsum([0] + [r.n for r in rasters])
    times = np.concatenate([r.times for r in rasters])
    ids = np.concatenate([r.ids + o for r, o in zip(rasters, off, strict=False)])
    return Raster(times, ids, int(off[-1]), f"<ensemble {what}>")


@dataclass
class Ensemble:
    """Member networks and tasks combined into one network and one task (see the module
    docstring); :meth:`member_names` maps names back."""

    members: list[Network]
    tasks: list[Task]
    network: Network  #: the combined network
    task: Task  #: the combined task

    @property
    def size(self) -> int:
        return len(self.members)

    def group_names(self, k: int) -> dict[str, str]:
        """Member k's group names -> names in the combined graph."""
        p = member_prefix(k)
        return {g.name: p + g.name for g in self.members[k].spec.groups}

    def connection_names(self, k: int) -> dict[str, str]:
        """Member k's connection names -> names in the combined graph."""
        p = member_prefix(k)
        return {c.name: p + c.name for c in self.members[k].spec.connections}

    def target_slice(self, k: int) -> slice:
        """Member k's ids in the combined target space (its output neurons)."""
        off = sum(m.spec.nout for m in self.members[:k])
        return slice(off, off + self.members[k].spec.nout)

    def input_slice(self, k: int) -> slice:
        """Member k's ids in the combined input space."""
        off = sum(m.spec.nin for m in self.members[:k])
        return slice(off, off + self.members[k].spec.nin)


def combine(networks: list[Network], tasks: list[Task]) -> Ensemble:
    """The ensemble of ``networks`` (each with its own weights and fixed feedback matrices), member
    k on ``tasks[k]``. All tasks must share the loop grid; windows tasks are not combined."""
    if not networks or len(networks) != len(tasks):
        raise ConfigError("ensemble", "needs one task per member network, and at least one member")
    for k, t in enumerate(tasks):
        if t.grid != tasks[0].grid:
            raise ConfigError("ensemble", f"member {k}'s task has loop grid {t.grid} s, member 0's {tasks[0].grid} s")
        if t.windows is not None:
            raise ConfigError("ensemble", f"member {k}'s task uses windows of opportunity (not combined)")
    spec = _combined_spec([n.spec for n in networks])
    weights: dict[str, np.ndarray] = {}
    feedback: dict[str, np.ndarray] = {}
    for k, net in enumerate(networks):
        p = member_prefix(k)
        weights.update({p + name: w for name, w in net.weights.items()})
        feedback.update({p + name: b for name, b in net.feedback.items()})
    network = Network(spec, weights, feedback)
    task = Task(
        _concat([t.input for t in tasks], "input"),
        _concat([t.target for t in tasks], "target"),
        tasks[0].grid,
        name="ensemble",
    )
    return Ensemble(list(networks), list(tasks), network, task)
