"""The event catalogue. Importing this package registers every event type.

Every module of the package is imported (``pkgutil``), so a new events module
registers its events without an edit here.
"""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
