"""Architecture configs and the uncased vocabulary for random:<preset> sources."""
