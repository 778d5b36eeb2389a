"""Dead letters: every ``dlq`` record projected into MongoDB for operators to list and re-drive.

``decider`` turns one ``dlq`` record into a stored dead letter; ``install`` wires its agent,
the one agent that never dead-letters (it would feed its own topic).
"""
