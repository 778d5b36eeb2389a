"""Each setting is declared once; every list of settings is derived from or checked against it."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from config.fields import declared, setting
from config.reference import doc_default, render
from config.settings import DECLARED, ENV_FIELDS, Settings

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "configuration.md"
README = ROOT / "README.md"
# Variables the example scripts read (README "Examples"): not process settings.
SCRIPT_VARIABLES = frozenset({"MERCATO_URL", "MERCATO_EMAIL", "MERCATO_PASSWORD"})
VARIABLE = re.compile(r"MERCATO_[A-Z0-9_]+")


def test_the_reference_page_is_rendered_from_the_declarations() -> None:
    assert REFERENCE.read_text() == render(), (
        "docs/configuration.md is stale: run "
        "`.venv/bin/python -m config.reference > docs/configuration.md`"
    )


def test_every_field_is_declared_once_with_its_own_variable() -> None:
    assert [item.name for item in DECLARED] == [f.name for f in dataclasses.fields(Settings)]
    assert len(ENV_FIELDS) == len(DECLARED), "two settings share a variable"
    for item in DECLARED:
        # One naming rule, so a variable can be guessed from the attribute and back.
        assert item.env == f"MERCATO_{item.name.upper()}"
        assert item.spec.help.strip(), f"{item.env} has no help"


def test_a_field_without_a_declaration_is_refused() -> None:
    @dataclasses.dataclass(frozen=True)
    class Partial:
        declared_one: int = setting(1, env="MERCATO_DECLARED_ONE", help="declared")
        bare: int = 2

    with pytest.raises(TypeError, match=r"Partial\.bare is not declared with setting\(\)"):
        declared(Partial)


def test_a_field_of_a_type_no_variable_parses_to_is_refused() -> None:
    @dataclasses.dataclass(frozen=True)
    class Odd:
        sizes: tuple[int, ...] = setting((1,), env="MERCATO_SIZES", help="odd")

    with pytest.raises(TypeError, match="cannot be parsed"):
        declared(Odd)


def test_a_literal_annotation_gives_the_choices() -> None:
    (env,) = (item for item in DECLARED if item.name == "env")
    assert env.spec.choices == ("dev", "prod")
    assert env.kind is str


def _docs() -> list[Path]:
    return [README, *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("path", _docs(), ids=lambda path: path.name)
def test_docs_name_only_variables_that_exist(path: Path) -> None:
    unknown = []
    for name in set(VARIABLE.findall(path.read_text())) - SCRIPT_VARIABLES:
        # MERCATO_PAYMENT_* stands for a group; it must still match something.
        group = name.endswith("_") and any(var.startswith(name) for var in ENV_FIELDS)
        if name not in ENV_FIELDS and not group:
            unknown.append(name)
    assert not unknown, f"{path.name} names variables no setting declares: {sorted(unknown)}"


def _readme_table() -> list[tuple[list[str], list[str]]]:
    """(variables, defaults) of each row of the README's configuration table."""
    section = README.read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not cells[0].startswith("`MERCATO_"):
            continue
        rows.append(([v.strip("`") for v in cells[0].split(" / ")], cells[1].split(" / ")))
    return rows


def test_the_readme_table_shows_the_declared_defaults() -> None:
    rows = _readme_table()
    assert len(rows) > 10, "the README configuration table was not found"
    by_env = {item.env: item for item in DECLARED}
    for variables, defaults in rows:
        assert len(variables) == len(defaults), f"one default per variable: {variables}"
        for variable, shown in zip(variables, defaults, strict=True):
            # A default written in words ("generated in dev, ...") is the help's to check.
            if shown and not shown.startswith("`"):
                continue
            assert shown == doc_default(by_env[variable]), f"README default of {variable}"
