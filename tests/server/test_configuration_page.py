"""docs/configuration.md is generated from the settings table: the committed page must be current."""

from __future__ import annotations

from docs.generate import PAGE, configuration_page
from vtwait.server.settings import OPTIONS


def test_committed_configuration_page_is_the_generated_one() -> None:
    """A setting added, renamed or re-documented without ``python -m docs.generate`` fails here."""
    assert PAGE.read_text(encoding="utf-8") == configuration_page(), (
        "docs/configuration.md is stale: run python -m docs.generate"
    )


def test_configuration_page_has_a_row_per_setting() -> None:
    """Every setting of ``OPTIONS`` has its row, with its flag or 'env only'."""
    page = configuration_page()
    for option in OPTIONS:
        flag = f"`--{option.env.lower().replace('_', '-')}`" if option.flag else "env only"
        assert f"| `{option.env}` | {flag} |" in page
