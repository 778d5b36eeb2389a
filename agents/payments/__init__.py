"""Payments: charges and refunds through the provider, each settled once per key.

``decider`` settles commands against the payments table; ``provider`` is the provider
contract and its simulator, ``calls`` bounds each call (timeouts, retries, ``circuit``
breaker) and ``announcer`` sends the events of a settled record; ``install`` wires them
on a Faust app.
"""
