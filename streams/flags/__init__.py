"""Feature flags: the rules that evaluate them (``rules``) and the book that follows them."""
