"""The catalogue is complete, and the README's table lists exactly the codes in the enum."""

from __future__ import annotations

import re
from pathlib import Path

from callbridge.bridge.warnings import CATALOGUE, BridgeWarning, WarningCode, catalogue_markdown

ROOT = Path(__file__).resolve().parents[2]
ROW = re.compile(r"^\|\s*`([A-Z][A-Z0-9_]*)`\s*\|(.*)\|\s*$", re.MULTILINE)


def warnings_section() -> tuple[str, str]:
    """The README's "## Warnings" section if it has one, else docs/warnings.md."""
    readme = ROOT / "README.md"
    if readme.is_file():
        text = readme.read_text(encoding="utf-8")
        match = re.search(r"^## Warnings\s*$(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
        if match:
            return "README.md", match.group(1)
    return "docs/warnings.md", (ROOT / "docs" / "warnings.md").read_text(encoding="utf-8")


def table_rows(text: str) -> dict[str, list[str]]:
    """Code -> its other cells, for rows whose first cell is a code."""
    rows: dict[str, list[str]] = {}
    for code, rest in ROW.findall(text):
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", rest)]
        if code in rows:
            raise AssertionError(f"{code} appears twice in the table")
        rows[code] = cells
    return rows


def test_every_code_has_when_and_resolution() -> None:
    assert set(CATALOGUE) == set(WarningCode)
    for code, entry in CATALOGUE.items():
        assert entry.when.strip() and entry.resolution.strip(), code
        assert entry.when.endswith(".") and entry.resolution.endswith("."), code


def test_readme_table_lists_exactly_the_enum() -> None:
    where, text = warnings_section()
    rows = table_rows(text)
    documented = {code for code, cells in rows.items() if len(cells) >= 2}
    enum = {code.value for code in WarningCode}
    assert enum - documented == set(), f"codes missing from the table in {where}"
    assert documented - enum == set(), f"codes in {where} that the enum does not have"
    for code, cells in rows.items():
        assert all(cell for cell in cells[:2]), f"{code}: empty when/resolution in {where}"


def test_docs_table_is_the_catalogue() -> None:
    doc = (ROOT / "docs" / "warnings.md").read_text(encoding="utf-8")
    assert catalogue_markdown() in doc, (
        "docs/warnings.md is out of date: paste "
        "callbridge.bridge.warnings.catalogue_markdown() into it"
    )


def test_payload_has_the_seed_shape_plus_call_fields() -> None:
    plain = BridgeWarning(WarningCode.SLOW_TOOL_CALL, "slow", "call-1", "acme", at=12.5)
    assert plain.payload() == {
        "type": "Warning",
        "code": "SLOW_TOOL_CALL",
        "description": "slow",
        "call_id": "call-1",
        "tenant": "acme",
        "timestamp": 12.5,
    }
    detailed = BridgeWarning(
        WarningCode.TOOL_CALL_FAILED, "x", "c", "t", details={"tool": "lookup"}
    )
    assert detailed.payload()["details"] == {"tool": "lookup"}
