"""Optimisers: step 5 of the rule (MODEL.md 2.7) (RMaxProp, RMSprop, fixed learning rate)."""

from superspike.optim.optimizers import (
    OPTIMIZERS,
    Fixed,
    Optimizer,
    RMaxProp,
    RMSprop,
    get_optimizer,
    make_optimizer,
)

__all__ = ["OPTIMIZERS", "Fixed", "Optimizer", "RMSprop", "RMaxProp", "get_optimizer", "make_optimizer"]
