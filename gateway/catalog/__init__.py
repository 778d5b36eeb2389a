"""Products and reviews: writes through the catalog agent, reads from the read models."""
