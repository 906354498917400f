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

Members with the same input share their input groups: the same input groups (names and sizes,
in order) and the same input raster (``n``, spike times and ids equal), and, if their states are
given, the same state of those groups (their spike rings). The first such member (the *owner*)
contributes its input groups; the others' connections from an input group start at the owner's
group, and they contribute none of their own (they skip that place in the interleaving). An input
group is a spike source that replays its raster, so a member computes the same from a shared
one; the engine then computes the input layer's presynaptic traces once for all of them. The
combined input raster holds each distinct input once.

What must be shared, and is checked (:func:`ensemble_key`): the model constants, the loop grid
and time step, and the kind of feedback. Symmetric feedback (the error one step late through the
weights) and fixed matrices (random, uniform: 1 + the axonal delay late, and another PSP
cut-off, MODEL.md 2.6 and 4.5) are constants of the whole graph, so random and uniform members
can share an ensemble (each keeps its own matrices), symmetric ones form their own. Direct
feedback is not combined: it joins every hidden group to every output group of the graph.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

import numpy as np

from superspike.errors import ConfigError
from superspike.network.graph import Connection, Group, NetworkSpec
from superspike.network.network import Network
from superspike.task.raster import Raster, Task

if TYPE_CHECKING:
    from superspike.engine.state import State

__all__ = ["Ensemble", "combine", "feedback_kind", "input_fingerprint", "member_prefix"]


def member_prefix(k: int) -> str:
    """Prefix of member k's group and connection names in the combined graph."""
    return f"m{k}."


def feedback_kind(spec: NetworkSpec) -> str:
    """What the combined graph must share about feedback: "symmetric", "fixed" (random and
    uniform) or "direct"."""
    return {"random": "fixed", "uniform": "fixed"}.get(spec.feedback, spec.feedback)


def _kind_mode(kind: str) -> str:
    return {"fixed": "random"}.get(kind, kind)


def input_fingerprint(raster: Raster) -> str:
    """A digest of an input raster (its size, spike times and ids): equal rasters have equal
    fingerprints (members with equal ones may share their input groups, :func:`combine`)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(np.int64(raster.n).tobytes())
    h.update(np.int64(raster.times.size).tobytes())
    h.update(np.ascontiguousarray(raster.times, np.float64).tobytes())
    h.update(np.ascontiguousarray(raster.ids, np.int64).tobytes())
    return h.hexdigest()


def _input_owners(specs: list[NetworkSpec], tasks: list[Task], states: Sequence[State] | None) -> list[int]:
    """Per member, the member whose input groups it uses: the first with the same input groups,
    the same input raster and (if ``states`` are given) the same input-group states; else itself."""
    owners: list[int] = []
    seen: dict[tuple, list[int]] = {}
    for k, (spec, task) in enumerate(zip(specs, tasks, strict=True)):
        inputs = tuple((g.name, g.n) for g in spec.input_groups)
        candidates = seen.setdefault((inputs, input_fingerprint(task.input)), [])
        owner = next((j for j in candidates if _same_input(j, k, specs, tasks, states)), k)
        if owner == k:
            candidates.append(k)
        owners.append(owner)
    return owners


def _same_input(j: int, k: int, specs: list[NetworkSpec], tasks: list[Task], states: Sequence[State] | None) -> bool:
    """Whether members j and k (with the same input groups) have equal input rasters and, if
    ``states`` are given, equal states of their input groups (every field)."""
    a, b = tasks[j].input, tasks[k].input
    if a.n != b.n or not (np.array_equal(a.times, b.times) and np.array_equal(a.ids, b.ids)):
        return False
    if states is None:
        return True
    for g in specs[k].input_groups:
        x, y = states[j].groups[g.name], states[k].groups[g.name]
        for f in fields(x):
            u, v = getattr(x, f.name), getattr(y, f.name)
            if (u is None) != (v is None) or (u is not None and not np.array_equal(u, v)):
                return False
    return True


def _names(spec: NetworkSpec, k: int, owner: int) -> dict[str, str]:
    """Member k's group names -> names in the combined graph (its input groups are ``owner``'s)."""
    return {g.name: member_prefix(k if g.lif else owner) + g.name for g in spec.groups}


def _combined_spec(specs: list[NetworkSpec], owners: list[int]) -> NetworkSpec:
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
    # arrays; within a member the order of its groups and connections is its own. A member that
    # uses another's input groups skips their places (None).
    def interleave(lists: list[list]) -> list:
        return [x[i] for i in range(max(map(len, lists))) for x in lists if i < len(x) and x[i] is not None]

    groups: list[Group] = interleave(
        [
            [Group(member_prefix(k) + g.name, g.n, g.kind, g.target, g.neuron) if g.lif or owners[k] == k else None
             for g in s.groups]
            for k, s in enumerate(specs)
        ]
    )  # fmt: skip
    names = [_names(s, k, owners[k]) for k, s in enumerate(specs)]
    conns: list[Connection] = interleave(
        [
            [Connection(member_prefix(k) + c.name, names[k][c.pre], names[k][c.post], c.plastic, c.w0)
             for c in s.connections]
            for k, s in enumerate(specs)
        ]
    )  # fmt: skip
    combined = first.replace(groups=tuple(groups), connections=tuple(conns), feedback=_kind_mode(kind))
    # the combined constants must be each member's (the PSP cut-off and the lag depend on the mode)
    if combined.psp_cutoff() != first.psp_cutoff() or combined.feedback_lag() != first.feedback_lag():
        raise ConfigError("ensemble", "the members' feedback constants cannot be shared")  # pragma: no cover
    return combined


def _id_maps(spec: NetworkSpec, members: list[NetworkSpec], owners: list[int], which: str) -> list[np.ndarray]:
    """Per member, the combined id of each of its input (``which`` = "input_groups") or target
    ("output_groups") ids: the combined groups take the ids in their declaration order (a member
    that shares its input has the ids of its owner's input groups)."""
    off, at = {}, 0
    for g in getattr(spec, which):
        off[g.name] = at
        at += g.n
    maps = []
    for k, s in enumerate(members):
        names = _names(s, k, owners[k])
        maps.append(np.concatenate([off[names[g.name]] + np.arange(g.n) for g in getattr(s, which)]))
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
    #: per member, the member whose input groups it uses (itself if it has its own)
    input_owners: list[int]

    @property
    def size(self) -> int:
        return len(self.members)

    def group_names(self, k: int) -> dict[str, str]:
        """Member k's group names -> names in the combined graph (its input groups may be
        another member's: those it shares)."""
        return _names(self.members[k].spec, k, self.input_owners[k])

    def connection_names(self, k: int) -> dict[str, str]:
        """Member k's connection names -> names in the combined graph."""
        p = member_prefix(k)
        return {c.name: p + c.name for c in self.members[k].spec.connections}

    def target_ids(self, k: int) -> np.ndarray:
        """The combined target ids of member k's target ids 0, 1, ... (its output neurons)."""
        return _id_maps(self.network.spec, [m.spec for m in self.members], self.input_owners, "output_groups")[k]

    def input_ids(self, k: int) -> np.ndarray:
        """The combined input ids of member k's input ids (its owner's, if it shares its input)."""
        return _id_maps(self.network.spec, [m.spec for m in self.members], self.input_owners, "input_groups")[k]


def combine(networks: list[Network], tasks: list[Task], states: Sequence[State] | None = None) -> Ensemble:
    """The ensemble of ``networks`` (each with its own weights and fixed feedback matrices), member
    k on ``tasks[k]``. All tasks must share the loop grid; windows tasks are not combined.
    Members with the same input share their input groups (module docstring); ``states``, each
    member's state to start from, if given: only those whose input groups' states are equal too
    (every field)."""
    if not networks or len(networks) != len(tasks):
        raise ConfigError("ensemble", "needs one task per member network, and at least one member")
    for k, t in enumerate(tasks):
        if t.grid != tasks[0].grid:
            raise ConfigError("ensemble", f"member {k}'s task has loop grid {t.grid} s, member 0's {tasks[0].grid} s")
        if t.windows is not None:
            raise ConfigError("ensemble", f"member {k}'s task uses windows of opportunity (not combined)")
        if t.is_stream:
            raise ConfigError("ensemble", f"member {k}'s task is a stream of fresh segments (not combined)")
    if states is not None and len(states) != len(networks):
        raise ConfigError("ensemble", "needs one state per member network")
    specs = [n.spec for n in networks]
    owners = _input_owners(specs, tasks, states)
    spec = _combined_spec(specs, owners)
    weights: dict[str, np.ndarray] = {}
    feedback: dict[str, np.ndarray] = {}
    for k, net in enumerate(networks):
        p = member_prefix(k)
        weights.update({p + name: w for name, w in net.weights.items()})
        feedback.update({p + name: b for name, b in net.feedback.items()})
    network = Network(spec, weights, feedback)
    own = [k for k in range(len(networks)) if owners[k] == k]  # each distinct input once
    inputs = _id_maps(spec, specs, owners, "input_groups")
    task = Task(
        _concat([tasks[k].input for k in own], [inputs[k] for k in own], "input"),
        _concat([t.target for t in tasks], _id_maps(spec, specs, owners, "output_groups"), "target"),
        tasks[0].grid,
        name="ensemble",
    )
    return Ensemble(list(networks), list(tasks), network, task, owners)
