"""superspike.rule."""
