"""The SuperSpike rule's pieces outside the engines: surrogate derivative and cost measures."""

from superspike.rule.cost import reported_mse, van_rossum_distance, van_rossum_per_neuron
from superspike.rule.surrogate import surrogate, surrogate_array

__all__ = ["reported_mse", "surrogate", "surrogate_array", "van_rossum_distance", "van_rossum_per_neuron"]
