"""In-app notifications: the caller's reads, and changes through the notifications agent."""
