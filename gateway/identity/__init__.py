"""Accounts and their credentials: registration, login, tokens, profiles, refresh, resets."""
