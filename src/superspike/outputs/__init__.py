"""superspike.outputs."""
