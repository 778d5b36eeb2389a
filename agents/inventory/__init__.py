"""Inventory: every product's stock, reserved, released and adjusted once per command.

``decider`` decides against the stock table, ``announcer`` sends the events of a recorded
decision; ``install`` wires them on a Faust app.
"""
