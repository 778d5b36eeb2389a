"""/v1/groups: groups of users to share files with."""
