"""Reserved for its issue."""
