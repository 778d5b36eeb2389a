"""Catalog: products and their reviews, decided per product, and what follows from stock.

``rules`` holds the pure product decisions and ``decider`` carries them out; ``reviews``
decides reviews beside the product's rating; ``stock`` projects the inventory's stock
changes onto products and ``stock_alerts`` tells sellers when stock runs low;
``install`` wires the three agents on a Faust app.
"""
