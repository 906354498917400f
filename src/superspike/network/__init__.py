"""Network descriptions: groups and connections (a graph), feedback strategy, constants, weights."""

from superspike.network.graph import FEEDBACK_MODES, Connection, FeedbackEdge, Group, NetworkSpec
from superspike.network.network import Network

__all__ = ["FEEDBACK_MODES", "Connection", "FeedbackEdge", "Group", "Network", "NetworkSpec"]
