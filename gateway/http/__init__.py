"""The HTTP layer under every domain: the edge, problems, bodies, pagination, rate limits."""
