"""Stock levels, changed through the inventory agent that owns them."""
