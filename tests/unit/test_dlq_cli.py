"""``mercato dlq``: its arguments (the commands themselves run in tests/integration)."""

from __future__ import annotations

import pytest

from mercato.cli import build_parser


def test_list_and_redrive_parse() -> None:
    listed = build_parser().parse_args(["dlq", "list", "--agent", "audit", "--limit", "5"])
    assert (listed.agent, listed.topic, listed.limit) == ("audit", None, 5)
    assert build_parser().parse_args(["dlq", "redrive", "abc"]).id == "abc"


@pytest.mark.parametrize("limit", ["0", "1001", "-3", "many"])
def test_a_page_size_out_of_range_is_refused(
    limit: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["dlq", "list", "--limit", limit])
    assert exited.value.code == 2
    assert "from 1 to 1000" in capsys.readouterr().err
