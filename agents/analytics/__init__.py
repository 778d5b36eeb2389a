"""Analytics: live metrics per scope (the marketplace, each seller) by event time.

Two stages, both Faust agents over changelogged RocksDB tables:

1. ``agents.analytics.facts`` reads ``orders``, ``payments``, ``users``, ``files``,
   ``products`` and the client events on ``analytics``, and turns each event into
   *facts*: what it adds to each scope it counts in, keyed by scope on the internal
   ``analytics-facts`` topic, with ids derived from what they count.
2. ``agents.analytics.decider`` applies each fact once to its scope's one-minute, hour
   and UTC-day windows (``agents.analytics.windows``: clock, watermark, grace, late
   events, dedupe), emits closed and revised windows to MongoDB (reports) and
   ``analytics-windows``; ``agents.analytics.publisher`` builds the dashboard snapshots
   (``agents.analytics.snapshot``) and pushes those that changed, at most once a second.

What counts: an order when it is paid (orders, units, revenue in its currency), its
refund when it is refunded; a product view per ``product.viewed``; conversion is the
day's orders over its distinct product viewers; visitors now are distinct sessions or
users seen in the last five minutes.

``agents.analytics.install`` wires it all (the package itself imports nothing, so the
gateway can use the pure ``snapshot`` and ``metrics`` modules without Faust).
"""
