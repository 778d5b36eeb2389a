"""Audit: every ``audit`` record appended once to the append-only audit log.

``decider`` maps a record to its entry; ``install`` wires it on a Faust app.
"""
