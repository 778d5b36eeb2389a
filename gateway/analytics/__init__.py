"""Analytics: client events in, dashboards and reports out."""
