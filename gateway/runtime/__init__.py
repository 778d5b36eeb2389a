"""What every gateway domain builds on: the backends, the command bus, background work."""
