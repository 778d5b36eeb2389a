"""Webhooks: owners' events turned into signed deliveries, retried until delivered.

``router`` turns each followed event into deliveries for the endpoints that may see it,
``deliveries`` keeps each delivery's state (the agent of the ``webhooks`` topic),
``dispatcher`` makes the HTTP attempts off the agents, ``signing``, ``addresses``,
``backoff`` and ``catalogue`` are the pure rules; ``install`` wires them on a Faust app.
"""
