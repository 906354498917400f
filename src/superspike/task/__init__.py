"""superspike.task."""
