"""Feature flags over HTTP: the admin API, the caller's view, and the gates routes ask."""
