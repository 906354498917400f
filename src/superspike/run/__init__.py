"""superspike.run."""
