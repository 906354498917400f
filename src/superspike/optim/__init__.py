"""Optimisers: step 5 of SPEC 2.1 (RMaxProp, RMSprop, fixed learning rate)."""

from superspike.optim.optimizers import OPTIMIZERS, Fixed, Optimizer, RMaxProp, RMSprop, get_optimizer

__all__ = ["OPTIMIZERS", "Fixed", "Optimizer", "RMSprop", "RMaxProp", "get_optimizer"]
