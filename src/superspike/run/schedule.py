"""The reference training schedule (MODEL.md 2.10), in steps.

burn-in (weights fixed; traces, grad2 and the cost average evolve) -> a cost line -> B blocks,
each followed by a cost line, with eta / lr_drop_factor from block ``lr_drop_block`` on -> a
final test with plasticity off: the current loop period is completed, then ``test_periods``
whole periods are run (one by default: 1020 s of training on the Oxford task end at 1022.44 s).
A task that draws fresh trials (a stream, MODEL.md 3.6) takes several, so that its final score
rests on enough unseen trials, and gets a cost line at the end (block B + 1) scoring them.
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
    test_periods: int = 1  #: whole loop periods of the final test
    test_line: bool = False  #: a cost line at the end of the final test (streams)

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
        test_periods: int = 1,
        test_line: bool = False,
    ) -> Schedule:
        """A schedule from durations in s."""
        return cls(
            steps(burn_in, dt),
            steps(block, dt),
            blocks,
            steps(grid, dt),
            eta,
            lr_drop_block,
            lr_drop_factor,
            test_periods,
            test_line,
        )

    def block_start(self, b: int) -> int:
        """First step of training block b (b = blocks: the end of training)."""
        return self.burn_in + b * self.block

    @property
    def training_end(self) -> int:
        """Step at which plasticity is switched off."""
        return self.block_start(self.blocks)

    @property
    def end(self) -> int:
        """Last step + 1 of the run: the current loop period completed, then ``test_periods`` more."""
        e, p = self.training_end, self.period
        return -(-e // p) * p + self.test_periods * p

    @property
    def test_start(self) -> int:
        """First step of the scored final test: its ``test_periods`` whole periods."""
        return self.end - self.test_periods * self.period

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
        yield (self.training_end, self.end, False, 0.0, self.blocks, self.blocks + 1 if self.test_line else None)
