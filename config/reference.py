"""docs/configuration.md, rendered from the settings declarations.

``python -m config.reference > docs/configuration.md`` writes it again after a setting
changes; tests/unit/test_settings_reference.py fails while the file and the declarations
disagree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from config.fields import Declared
from config.settings import DECLARED

HEADER = """\
# Configuration

<!-- Generated from the declarations in config/settings.py by
     `python -m config.reference > docs/configuration.md`: edit those, not this file. -->

Every Mercato process reads these variables once, at start, into one frozen
`Settings` object; all are optional in dev. Secrets are never logged and DSN
passwords are masked. A malformed value stops the process with a message naming
the variable.

| variable | type | default | meaning |
|---|---|---|---|
"""
_KIND_NAMES: dict[type, str] = {
    bool: "true/false", int: "integer", float: "number", str: "text", Path: "path",
}


def doc_default(item: Declared) -> str:
    """The default as the reference shows it: ``5`` for 5.0, nothing for an empty text."""
    value: Any = item.default
    if isinstance(value, float):
        value = f"{value:g}"
    text = item.render(value)
    return f"`{text}`" if text else ""


def row(item: Declared) -> str:
    """One line of the reference table."""
    if item.spec.choices:
        kind = " or ".join(f"`{choice}`" for choice in item.spec.choices)
    elif item.spec.scheme:
        kind = f"`{item.spec.scheme}://` URL"
    else:
        kind = _KIND_NAMES[item.kind]
    if item.kind in (int, float) and item.spec.zero_ok:
        kind += ", 0 allowed"
    elif item.kind in (int, float):
        kind += " > 0"
    meaning = item.spec.help.replace("|", "\\|")
    return f"| `{item.env}` | {kind} | {doc_default(item)} | {meaning} |\n"


def render() -> str:
    """The whole of docs/configuration.md."""
    return HEADER + "".join(row(item) for item in DECLARED)


if __name__ == "__main__":
    print(render(), end="")
