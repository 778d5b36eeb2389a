"""Notifications: outbox messages delivered once, in-app notifications and unread counts.

``decider`` handles the outbox, ``templates`` renders in-app text, ``sinks`` delivers
e-mail (a file or the log for now); ``install`` wires them on a Faust app.
"""
