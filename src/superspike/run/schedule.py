"""The reference training schedule (MODEL.md 2.10), in steps.

burn-in (weights fixed; traces, grad2 and the cost average evolve) -> a cost line -> B blocks,
each followed by a cost line, with eta / lr_drop_factor from block ``lr_drop_block`` on -> a
final loop with plasticity off, to the end of the next full loop period: the current period is
completed, then one whole period is run (1020 s of training on the Oxford task end at 1022.44 s).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from superspike.params import steps


@dataclass(frozen=True)
class Schedule:
    """Where the phases of a run begin and end, in time steps."""

    burn_in: int
    block: int
    blocks: int
    period: int
    eta: float
    lr_drop_block: int = 20
    lr_drop_factor: float = 10.0

    @classmethod
    def create(
        cls,
        burn_in: float,
        block: float,
        blocks: int,
        grid: float,
        dt: float,
        eta: float,
        lr_drop_block: int = 20,
        lr_drop_factor: float = 10.0,
    ) -> Schedule:
        """A schedule from durations in s."""
        return cls(steps(burn_in, dt), steps(block, dt), blocks, steps(grid, dt), eta, lr_drop_block, lr_drop_factor)

    def block_start(self, b: int) -> int:
        """First step of training block b (b = blocks: the end of training)."""
        return self.burn_in + b * self.block

    @property
    def training_end(self) -> int:
        """Step at which plasticity is switched off."""
        return self.block_start(self.blocks)

    @property
    def end(self) -> int:
        """Last step + 1 of the run: the end of the next full loop period after training."""
        e, p = self.training_end, self.period
        return (e // p + 1) * p + (p if e % p else 0)

    def block_eta(self, b: int) -> float:
        """Learning rate of block b: not cumulative, eta0 / factor from lr_drop_block on."""
        return self.eta / self.lr_drop_factor if b >= self.lr_drop_block else self.eta

    def segments(self, eta0: float) -> Iterator[tuple[int, int, bool, float, int, int | None]]:
        """The run's phases one after another, made as they are reached (a schedule of 10**9 blocks
        costs nothing before its first step): (start, stop, learning, eta, block, the cost line
        written at stop or None). ``eta0``: the learning rate shown for the burn-in."""
        yield (0, self.burn_in, False, eta0, 0, 0)
        for b in range(self.blocks):
            yield (self.block_start(b), self.block_start(b + 1), True, self.block_eta(b), b, b + 1)
        yield (self.training_end, self.end, False, 0.0, self.blocks, None)
