"""Groups: create groups, add and remove members (for sharing files with a group)."""
