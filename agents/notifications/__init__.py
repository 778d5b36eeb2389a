"""Notifications: outbox messages delivered once, in-app notifications and unread counts.

``decider`` handles the outbox, ``recipients`` keeps each user's unread count and address,
``templates`` renders in-app text, ``sinks`` delivers e-mail (a file or the log for now);
``install`` wires them on a Faust app.
"""
