"""docs/OPTIONS.md is generated from the catalogue and must be current."""

from __future__ import annotations

from registry.catalogue import ALL_FIELDS, TABS
from registry.docs import OPTIONS_PATH, render_options_md


def test_options_md_is_up_to_date() -> None:
    assert OPTIONS_PATH.exists(), "run: python -m registry.docs"
    assert OPTIONS_PATH.read_text(encoding="utf-8") == render_options_md(), (
        "docs/OPTIONS.md is out of date; run: python -m registry.docs"
    )


def test_options_md_documents_every_field_by_tab() -> None:
    text = render_options_md()
    for tab in TABS:
        assert f"## {tab.title} tab" in text
    for f in ALL_FIELDS:
        assert f"`{f.flag}`" in text or f"`{f.name}`" in text
    assert "Availability: shown only when optimizer is adamw or adamw8bit." in text
    assert "`adamw8bit` (AdamW 8-bit)" in text
