"""Network descriptions: sizes, feedback strategy, constants, weights."""

from superspike.network.network import FEEDBACK_MODES, Network, NetworkSpec

__all__ = ["FEEDBACK_MODES", "Network", "NetworkSpec"]
