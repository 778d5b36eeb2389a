"""How a setting is declared: default, environment variable and help in one ``setting()`` call.

The type is the field's annotation. Everything else about a setting (the ``MERCATO_*``
table, parsing a variable, writing it back for a child process, the log-safe view, the
reference in docs/configuration.md) is derived from these declarations, so a setting is
added, renamed or documented in exactly one place.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

T = TypeVar("T")
# The key of a settings field's metadata that holds its Spec.
_SPEC = "mercato.setting"
# The types a variable can be parsed into; a declaration of any other type fails at import.
_KINDS = (bool, int, float, str, Path)


class ConfigError(ValueError):
    """A setting is missing or malformed; the message says which and how to fix it."""


def mask_dsn(url: str) -> str:
    """Hide the password of a DSN so it can be logged."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))


@dataclasses.dataclass(frozen=True, slots=True)
class Spec:
    """What a ``setting()`` call says besides its default."""

    env: str
    help: str
    # Never shown: hidden from repr and shown as "***" by safe_dict.
    secret: bool = False
    # Numbers: 0 is meaningful ("off"); otherwise a variable must be positive.
    zero_ok: bool = False
    # Strings: the only accepted values (a Literal annotation gives them too).
    choices: tuple[str, ...] = ()
    # A DSN of this scheme (its password is masked in logs).
    scheme: str = ""


def setting(
    default: T,
    *,
    env: str,
    help: str,
    secret: bool = False,
    zero_ok: bool = False,
    choices: tuple[str, ...] = (),
    scheme: str = "",
) -> T:
    """Declare a settings field: its default, ``MERCATO_*`` variable and help."""
    spec = Spec(env, help, secret=secret, zero_ok=zero_ok, choices=choices, scheme=scheme)
    return dataclasses.field(default=default, repr=not secret, metadata={_SPEC: spec})


@dataclasses.dataclass(frozen=True, slots=True)
class Declared:
    """One settings field with everything derived from its declaration."""

    name: str
    kind: type
    default: Any
    spec: Spec

    @property
    def env(self) -> str:
        """The ``MERCATO_*`` variable that sets this field."""
        return self.spec.env

    def parse(self, raw: str) -> Any:
        """The value of this field's variable, or a ConfigError naming the variable."""
        if self.kind is bool:
            return _parse_bool(raw, self.env)
        if self.kind is int:
            return _parse_number(raw, self.env, int, allow_zero=self.spec.zero_ok)
        if self.kind is float:
            return _parse_number(raw, self.env, float, allow_zero=self.spec.zero_ok)
        if self.kind is Path:
            return Path(raw)
        return raw

    def check(self, value: Any) -> None:
        """Raise a ConfigError when a value breaks the declaration's choices or scheme."""
        if self.spec.choices and value not in self.spec.choices:
            *first, last = (repr(choice) for choice in self.spec.choices)
            allowed = f"{', '.join(first)} or {last}" if first else last
            raise ConfigError(f"{self.env} must be {allowed}, got {value!r}")
        if self.spec.scheme and not urlsplit(value).scheme.startswith(self.spec.scheme):
            raise ConfigError(
                f"{self.env} must be a {self.spec.scheme}:// URL, got {mask_dsn(value)!r}"
            )

    def render(self, value: Any) -> str:
        """The variable's text that ``parse`` turns back into ``value``."""
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    def safe(self, value: Any) -> Any:
        """The value as it may be logged: secrets hidden, DSN passwords masked."""
        if self.spec.secret:
            return "***" if value else ""
        if self.spec.scheme:
            return mask_dsn(value)
        if isinstance(value, Path):
            return str(value)
        return value


def declared(cls: type) -> tuple[Declared, ...]:
    """Every field of a settings dataclass, each of which must be declared by ``setting()``."""
    hints = typing.get_type_hints(cls)
    out = []
    for field in dataclasses.fields(cls):
        spec = field.metadata.get(_SPEC)
        if not isinstance(spec, Spec):
            raise TypeError(f"{cls.__name__}.{field.name} is not declared with setting()")
        kind, choices = _kind_of(hints[field.name])
        if kind not in _KINDS:
            raise TypeError(f"{cls.__name__}.{field.name}: a variable cannot be parsed as {kind}")
        if choices and not spec.choices:
            spec = dataclasses.replace(spec, choices=choices)
        out.append(Declared(field.name, kind, field.default, spec))
    return tuple(out)


def _kind_of(hint: Any) -> tuple[type, tuple[str, ...]]:
    if typing.get_origin(hint) is Literal:
        choices = typing.get_args(hint)
        return type(choices[0]), tuple(str(choice) for choice in choices)
    return hint, ()


def _parse_bool(raw: str, name: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _parse_number(
    raw: str, name: str, kind: type[int] | type[float], *, allow_zero: bool
) -> int | float:
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(
            f"{name} must be {'zero or more' if allow_zero else 'positive'}, got {raw!r}"
        )
    return value
