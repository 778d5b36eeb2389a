"""Persistence behind small contracts: MongoDB read models and Redis."""
