"""Ensembles: several independent networks as one graph (docs/SWEEPS.md, "Ensembles").

Member k's groups and connections are renamed ``m<k>.<name>``; the combined graph has no
connection between members, so every neuron, synapse and feedback edge computes exactly what it
computes alone: the engines take any graph (MODEL.md 4), and the per-neuron and per-synapse
arithmetic of a group depends only on the group, its connections and its feedback edges, whose
order within a member is kept. The members' groups and connections are interleaved (every
member's first group, then every member's second, ...), so that one layer of all members is one
stretch of the engines' flat arrays. The task is combined to match: each member's input and
target ids are mapped to the ids of its groups in the combined graph (the input raster is split
over the input groups in declaration order, MODEL.md 4.2).

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

    # interleaved: every member's first group, then every member's second, ... (likewise the
    # connections), so that the members' copies of a layer are neighbours in the kernels' flat
    # arrays; within a member the order of its groups and connections is its own
    def interleave(lists: list[list]) -> list:
        return [x[i] for i in range(max(map(len, lists))) for x in lists if i < len(x)]

    groups: list[Group] = interleave(
        [
            [Group(member_prefix(k) + g.name, g.n, g.kind, g.target, g.neuron) for g in s.groups]
            for k, s in enumerate(specs)
        ]
    )
    conns: list[Connection] = interleave(
        [
            [Connection(member_prefix(k) + c.name, member_prefix(k) + c.pre, member_prefix(k) + c.post, c.plastic, c.w0)
             for c in s.connections]
            for k, s in enumerate(specs)
        ]
    )  # fmt: skip
    combined = first.replace(groups=tuple(groups), connections=tuple(conns), feedback=_kind_mode(kind))
    # the combined constants must be each member's (the PSP cut-off and the lag depend on the mode)
    if combined.psp_cutoff() != first.psp_cutoff() or combined.feedback_lag() != first.feedback_lag():
        raise ConfigError("ensemble", "the members' feedback constants cannot be shared")  # pragma: no cover
    return combined


def _id_maps(spec: NetworkSpec, members: list[NetworkSpec], which: str) -> list[np.ndarray]:
    """Per member, the combined id of each of its input (``which`` = "input_groups") or target
    ("output_groups") ids: the combined groups take the ids in their declaration order."""
    off, at = {}, 0
    for g in getattr(spec, which):
        off[g.name] = at
        at += g.n
    maps = []
    for k, s in enumerate(members):
        maps.append(np.concatenate([off[member_prefix(k) + g.name] + np.arange(g.n) for g in getattr(s, which)]))
    return maps


def _concat(rasters: list[Raster], maps: list[np.ndarray], what: str) -> Raster:
    times = np.concatenate([r.times for r in rasters])
    ids = np.concatenate([m[r.ids] for r, m in zip(rasters, maps, strict=True)])
    return Raster(times, ids, sum(r.n for r in rasters), f"<ensemble {what}>")


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

    def target_ids(self, k: int) -> np.ndarray:
        """The combined target ids of member k's target ids 0, 1, ... (its output neurons)."""
        return _id_maps(self.network.spec, [m.spec for m in self.members], "output_groups")[k]

    def input_ids(self, k: int) -> np.ndarray:
        """The combined input ids of member k's input ids."""
        return _id_maps(self.network.spec, [m.spec for m in self.members], "input_groups")[k]


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
        if t.is_stream:
            raise ConfigError("ensemble", f"member {k}'s task is a stream of fresh segments (not combined)")
    spec = _combined_spec([n.spec for n in networks])
    weights: dict[str, np.ndarray] = {}
    feedback: dict[str, np.ndarray] = {}
    for k, net in enumerate(networks):
        p = member_prefix(k)
        weights.update({p + name: w for name, w in net.weights.items()})
        feedback.update({p + name: b for name, b in net.feedback.items()})
    network = Network(spec, weights, feedback)
    specs = [n.spec for n in networks]
    task = Task(
        _concat([t.input for t in tasks], _id_maps(spec, specs, "input_groups"), "input"),
        _concat([t.target for t in tasks], _id_maps(spec, specs, "output_groups"), "target"),
        tasks[0].grid,
        name="ensemble",
    )
    return Ensemble(list(networks), list(tasks), network, task)
