"""Identity: registrations (one account per email) and user commands (profile, roles,
password), each decided once by the agent owning its key.

``registrations`` and ``users`` hold the deciders; ``install`` wires them on a Faust app.
"""
