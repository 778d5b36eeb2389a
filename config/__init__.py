"""Mercato configuration: one frozen settings object, read once from ``MERCATO_*``."""

from config.settings import ConfigError, Settings, mask_dsn

__all__ = ["ConfigError", "Settings", "mask_dsn"]
