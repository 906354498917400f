"""A network as a graph: named neuron groups joined by named connections (docs/MODEL.md, section 4).

Groups are *input* groups (spike sources replaying the task's input) or *LIF* groups. A LIF
group with ``target=True`` is an output group: its error is the mismatch with the task's target.
Every other LIF group is hidden and receives an error by feedback. Connections join any pre
group to any LIF group (a group onto itself included), plastic or fixed, each with its own
initial weight scale.

The task's input raster is split over the input groups in the order they are declared (the
first group takes ids 0..n-1, the next n..), its target raster likewise over the output groups.

Feedback (:class:`FeedbackEdge`) is derived from the graph and the feedback mode:

- ``symmetric``, ``random``, ``uniform``: the error travels backwards along every connection from
  a hidden group to another LIF group, except *recurrent* connections (those that lie on a cycle
  of the graph, self connections included): credit is not carried back through recurrence.
  ``symmetric`` uses the connection's current weights (transposed), ``random`` and ``uniform`` a
  fixed matrix per such connection.
- ``direct`` (direct feedback alignment): every hidden group receives the error of every output
  group through its own fixed random matrix.

A group with plastic incoming connections must receive an error; a graph in which it cannot is
refused, naming the group.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field, replace

from superspike.errors import ConfigError
from superspike.params import NeuronParams, RegularizerParams, RuleParams, steps

FEEDBACK_MODES = ("symmetric", "random", "uniform", "direct")
GROUP_KINDS = ("input", "lif")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
#: largest group the network accepts (a declared or inferred size above it is a configuration error)
MAX_GROUP_SIZE = 1_000_000


@dataclass(frozen=True)
class Group:
    """A named group of ``n`` neurons: ``kind`` "input" (spike source) or "lif".

    ``neuron`` overrides the network's neuron constants for this LIF group (None: the network's);
    the time step and the axonal delay are the network's for every group. ``target`` marks an
    output group.
    """

    name: str
    n: int
    kind: str = "lif"
    target: bool = False
    neuron: NeuronParams | None = None

    def __post_init__(self) -> None:
        key = f"network.group.{self.name}"
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ConfigError("network.group", f"name {self.name!r} must be a word (letters, digits, _ and .)")
        if self.kind not in GROUP_KINDS:
            raise ConfigError(f"{key}.kind", f"must be one of {', '.join(GROUP_KINDS)}, got {self.kind!r}")
        if isinstance(self.n, bool) or int(self.n) != self.n or not 1 <= self.n <= MAX_GROUP_SIZE:
            raise ConfigError(f"{key}.n", f"must be a number of neurons in 1..{MAX_GROUP_SIZE}, got {self.n!r}")
        object.__setattr__(self, "n", int(self.n))
        if self.kind == "input" and (self.target or self.neuron is not None):
            raise ConfigError(key, "an input group has no target and no neuron constants")

    @property
    def lif(self) -> bool:
        """Whether the group is made of LIF neurons (hidden or output)."""
        return self.kind == "lif"


@dataclass(frozen=True)
class Connection:
    """Weights from every neuron of ``pre`` to every neuron of ``post`` (a LIF group).

    ``plastic`` connections learn with the SuperSpike rule; fixed ones keep their initial
    weights. ``w0`` is the scale of the initial weights, N(0, (w0/sqrt(n_pre))^2) (None: the
    network's).
    """

    name: str
    pre: str
    post: str
    plastic: bool = True
    w0: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name.replace("-", "_")):
            raise ConfigError("network.connection", f"name {self.name!r} must be a word (letters, digits, _ - .)")
        if self.w0 is not None and not (isinstance(self.w0, (int, float)) and 0 <= self.w0 < float("inf")):
            raise ConfigError(f"network.connection.{self.name}.w0", f"must be a non-negative number, got {self.w0!r}")


@dataclass(frozen=True)
class FeedbackEdge:
    """Error of group ``src`` fed to hidden group ``dst`` (MODEL.md 4.3 on graphs).

    ``via`` is the forward connection dst -> src whose transposed weights carry the error
    (symmetric feedback), or None for a fixed matrix of shape [src, dst] (random, uniform,
    direct), stored under ``name``.
    """

    name: str
    src: str
    dst: str
    via: str | None


@dataclass(frozen=True)
class NetworkSpec:
    """Groups, connections, feedback strategy and model constants of a SuperSpike network.

    ``feedback_delay`` (s) adds steps to hidden groups' delay lines (MODEL.md 4.5); ``regularizer``
    (MODEL.md 2.8) applies to connections into hidden groups; ``linear`` sets sigma' = 1 (a control
    of the paper's Fig. 7). Use :meth:`chain` for the paper's layered networks.
    """

    groups: tuple[Group, ...]
    connections: tuple[Connection, ...]
    feedback: str = "symmetric"
    feedback_delay: float = 0.0
    regularizer: RegularizerParams | None = None
    linear: bool = False
    neuron: NeuronParams = field(default_factory=NeuronParams)
    rule: RuleParams = field(default_factory=RuleParams)

    def __post_init__(self) -> None:
        object.__setattr__(self, "groups", tuple(self.groups))
        object.__setattr__(self, "connections", tuple(self.connections))
        names = [g.name for g in self.groups]
        for n in names:
            if names.count(n) > 1:
                raise ConfigError("network.group", f"two groups are named {n!r}")
        if not any(g.kind == "input" for g in self.groups):
            raise ConfigError("network.group", "the network needs at least one input group")
        if not any(g.target for g in self.groups):
            raise ConfigError("network.group", "the network needs at least one output group (target = true)")
        by_name = {g.name: g for g in self.groups}
        for g in self.groups:
            if g.neuron is not None:
                for key in ("dt", "axonal_delay"):
                    if getattr(g.neuron, key) != getattr(self.neuron, key):
                        raise ConfigError(
                            f"network.group.{g.name}.{key}", f"must be the network's ({getattr(self.neuron, key)})"
                        )
        cnames = [c.name for c in self.connections]
        for c in self.connections:
            key = f"network.connection.{c.name}"
            if cnames.count(c.name) > 1:
                raise ConfigError("network.connection", f"two connections are named {c.name!r}")
            for end in ("pre", "post"):
                if getattr(c, end) not in by_name:
                    raise ConfigError(f"{key}.{end}", f"no group named {getattr(c, end)!r}; groups: {', '.join(names)}")
            if not by_name[c.post].lif:
                raise ConfigError(f"{key}.post", f"{c.post!r} is an input group; connections end at LIF groups")
        if self.feedback not in FEEDBACK_MODES:
            raise ConfigError("feedback", f"must be one of {', '.join(FEEDBACK_MODES)}, got {self.feedback!r}")
        if self.feedback_delay < 0:
            raise ConfigError("feedback_delay", "must not be negative")
        interval = self.rule.update_interval / self.neuron.dt
        if abs(interval - round(interval)) > 1e-6:
            raise ConfigError("rule.update_interval", "must be a whole number of time steps")
        carries = self.error_groups
        for c in self.connections:
            post = by_name[c.post]
            if c.plastic and post.name not in carries:
                raise ConfigError(
                    f"network.connection.{c.name}",
                    f"is plastic, but its post group {c.post!r} receives no error: no chain of non-recurrent "
                    "connections leads from it to an output group (make it fixed, or use --feedback direct)",
                )

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def chain(
        cls,
        nin: int,
        hidden: tuple[int, ...] | list[int] = (),
        nout: int = 1,
        *,
        recurrent: bool = False,
        fixed_hidden: bool = False,
        **kwargs: object,
    ) -> NetworkSpec:
        """The paper's layered network: input -> hidden0 -> ... -> output.

        Connections are named ``input-hidden0``, ..., ``hiddenK-output`` (``input-output``
        without hidden layers); ``recurrent`` adds a plastic ``hiddenK-hiddenK`` connection to
        each hidden group (after the forward connections); ``fixed_hidden`` makes the
        connections into hidden groups fixed (a control of the paper's Fig. 7).
        """
        hidden = tuple(int(h) for h in hidden)
        for h in hidden:
            if h < 1:
                raise ConfigError("hidden", f"layer sizes must be positive, got {h}")
        for key, n in (("nin", nin), ("nout", nout)):
            if isinstance(n, bool) or int(n) != n or n < 1:
                raise ConfigError(key, f"must be a positive number of neurons, got {n}")
        names = ["input", *(f"hidden{k}" for k in range(len(hidden))), "output"]
        groups = [Group("input", int(nin), "input")]
        groups += [Group(f"hidden{k}", h) for k, h in enumerate(hidden)]
        groups.append(Group("output", int(nout), target=True))
        conns = [
            Connection(f"{a}-{b}", a, b, plastic=not (fixed_hidden and b != "output"))
            for a, b in itertools.pairwise(names)
        ]
        if recurrent:
            conns += [Connection(f"{h}-{h}", h, h, plastic=not fixed_hidden) for h in names[1:-1]]
        return cls(tuple(groups), tuple(conns), **kwargs)  # type: ignore[arg-type]

    # -- groups ------------------------------------------------------------------------------
    def group(self, name: str) -> Group:
        """The group called ``name``."""
        for g in self.groups:
            if g.name == name:
                return g
        raise KeyError(name)

    def connection(self, name: str) -> Connection:
        """The connection called ``name``."""
        for c in self.connections:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def input_groups(self) -> tuple[Group, ...]:
        return tuple(g for g in self.groups if g.kind == "input")

    @property
    def lif_groups(self) -> tuple[Group, ...]:
        """LIF groups (hidden and output) in declaration order."""
        return tuple(g for g in self.groups if g.lif)

    @property
    def output_groups(self) -> tuple[Group, ...]:
        return tuple(g for g in self.groups if g.target)

    @property
    def hidden_groups(self) -> tuple[Group, ...]:
        return tuple(g for g in self.groups if g.lif and not g.target)

    @property
    def nin(self) -> int:
        """Input neurons of all input groups (the task's input ids)."""
        return sum(g.n for g in self.input_groups)

    @property
    def nout(self) -> int:
        """Output neurons of all output groups (the task's target ids)."""
        return sum(g.n for g in self.output_groups)

    def neuron_of(self, group: str | Group) -> NeuronParams:
        """Neuron constants of a LIF group (its own, or the network's)."""
        g = self.group(group) if isinstance(group, str) else group
        return g.neuron if g.neuron is not None else self.neuron

    def is_chain(self) -> bool:
        """Whether this is a plain layered network as :meth:`chain` builds it (no recurrence)."""
        g = self.groups
        if len(self.input_groups) != 1 or len(self.output_groups) != 1 or len(self.connections) != len(g) - 1:
            return False
        if g[0].kind != "input" or not g[-1].target or any(x.neuron is not None for x in g):
            return False
        return all(c.pre == g[k].name and c.post == g[k + 1].name for k, c in enumerate(self.connections))

    @property
    def hidden_sizes(self) -> tuple[int, ...]:
        """Sizes of the hidden groups, in declaration order."""
        return tuple(g.n for g in self.hidden_groups)

    # -- connections and feedback ------------------------------------------------------------
    def shape(self, conn: str | Connection) -> tuple[int, int]:
        """Weight shape [pre, post] of a connection."""
        c = self.connection(conn) if isinstance(conn, str) else conn
        return (self.group(c.pre).n, self.group(c.post).n)

    @property
    def shapes(self) -> dict[str, tuple[int, int]]:
        """Weight shapes [pre, post] by connection name, in creation order."""
        return {c.name: self.shape(c) for c in self.connections}

    @property
    def plastic_connections(self) -> tuple[Connection, ...]:
        return tuple(c for c in self.connections if c.plastic)

    def recurrent(self, conn: str | Connection) -> bool:
        """Whether a connection lies on a cycle of the graph (a self connection included)."""
        c = self.connection(conn) if isinstance(conn, str) else conn
        # is c.pre reachable from c.post?
        seen, todo = {c.post}, [c.post]
        while todo:
            g = todo.pop()
            if g == c.pre:
                return True
            for d in self.connections:
                if d.pre == g and d.post not in seen:
                    seen.add(d.post)
                    todo.append(d.post)
        return False

    @property
    def feedback_edges(self) -> tuple[FeedbackEdge, ...]:
        """How errors reach hidden groups (see the module docstring), in a fixed order: the
        connections' creation order, or (direct) the hidden groups' then the output groups' order.
        Within a hidden group, errors are summed in this order."""
        by_name = {g.name: g for g in self.groups}
        if self.feedback == "direct":
            return tuple(
                FeedbackEdge(f"{o.name}-{h.name}", o.name, h.name, None)
                for h in self.hidden_groups
                for o in self.output_groups
            )
        edges = []
        for c in self.connections:
            pre, post = by_name[c.pre], by_name[c.post]
            if not pre.lif or pre.target or self.recurrent(c):
                continue
            via = c.name if self.feedback == "symmetric" else None
            edges.append(FeedbackEdge(c.name, post.name, pre.name, via))
        return tuple(edges)

    @property
    def error_groups(self) -> frozenset[str]:
        """The LIF groups that carry an error: the output groups, and every hidden group that a
        feedback edge reaches from a group carrying one."""
        carries = {g.name for g in self.output_groups}
        edges = self.feedback_edges
        grown = True
        while grown:
            grown = False
            for e in edges:
                if e.src in carries and e.dst not in carries:
                    carries.add(e.dst)
                    grown = True
        return frozenset(carries)

    @property
    def feedback_shapes(self) -> dict[str, tuple[int, int]]:
        """Shapes [src, dst] of the fixed feedback matrices by name (none for symmetric feedback)."""
        return {e.name: (self.group(e.src).n, self.group(e.dst).n) for e in self.feedback_edges if e.via is None}

    # -- timing ------------------------------------------------------------------------------
    @property
    def update_steps(self) -> int:
        """Steps per weight update interval (5000 by default)."""
        return round(self.rule.update_interval / self.neuron.dt)

    def delay_line_steps(self, group: str | Group) -> int:
        """D (MODEL.md 3.4) for the connections into a LIF group: the axonal delay, plus the feedback
        delay for hidden groups."""
        g = self.group(group) if isinstance(group, str) else group
        d = self.neuron.delay_steps
        if not g.target:
            d += steps(self.feedback_delay, self.neuron.dt)
        return d

    def feedback_lag(self) -> int:
        """Steps between an error and its arrival at the group it is fed to (MODEL.md 4.5): 1 for
        symmetric feedback, 1 + the axonal delay for fixed matrices (the error travels like a spike)."""
        return 1 if self.feedback == "symmetric" else 1 + self.neuron.delay_steps

    def regularized(self, group: str | Group) -> bool:
        """Whether the connections into a LIF group carry the activity regulariser (hidden groups)."""
        g = self.group(group) if isinstance(group, str) else group
        return self.regularizer is not None and g.lif and not g.target

    def psp_cutoff(self) -> float:
        """The PSP cut-off of step 4b (MODEL.md 2.6: 1e-5 in the reference's fixed-feedback build)."""
        return self.rule.psp_cutoff_for(self.feedback)

    def replace(self, **changes: object) -> NetworkSpec:
        """A copy with some fields changed."""
        return replace(self, **changes)  # type: ignore[arg-type]
