"""The runtime every domain's agents run on: Faust plumbing and the protocols they share.

``declare`` (the one way an agent is declared), ``effects`` (what an agent may do to
the outside world), ``lanes`` (records of a partition in flight per key),
``resilience`` (retries and dead letters), ``decisions`` (deciding each command once),
``caused`` (events caused by another), ``replies`` (answers and expiry records),
``messages`` (asking the notifications agent to tell a user), ``changelogs`` (repair
after an unclean exit) and ``heartbeat`` (the worker's liveness for readiness). No
domain logic lives here; the domain packages beside it (``agents.identity``,
``agents.catalog.decider``, ...) hold that.
"""
