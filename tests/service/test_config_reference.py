"""The configuration reference and the example tenant file cannot drift from the settings.

``docs/config.md`` is generated from ``callbridge.bridge.config`` (``python -m
callbridge.service.config_reference``);
``examples/tenants/example.toml`` says it lists every setting, so every field of every section
must appear in it, set or commented out.
"""

from __future__ import annotations

import re
from pathlib import Path

from callbridge.bridge.config import TenantConfig, load_config
from callbridge.service.config_reference import render, sections

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "tenants" / "example.toml"


def test_the_reference_is_generated_from_the_code() -> None:
    written = (REPO / "docs" / "config.md").read_text(encoding="utf-8")
    assert written == render(), (
        "docs/config.md is stale: "
        "run `python -m callbridge.service.config_reference > docs/config.md`"
    )


def test_every_setting_is_described() -> None:
    undescribed = [
        f"{section}.{name}"
        for section, model in sections()
        for name, field in model.model_fields.items()
        if not field.description
    ]
    assert undescribed == [], "give these a docstring in bridge/config.py"


def listed(text: str) -> set[str]:
    """``section.key`` for every ``key = ...`` or ``# key = ...`` / ``# key: ...`` line
    (from the first setting on: the header's prose is not a setting)."""
    found, section = set(), ""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("tenant ="))
    for line in lines[start:]:
        header = re.match(r"^\[(\w+)\]", line)
        if header:
            section = header.group(1)
            continue
        key = re.match(r"^#?\s*(\w+)\s*[=:]", line)
        if key:
            found.add(f"{section}.{key.group(1)}" if section else key.group(1))
    return found


def test_the_example_lists_every_setting_and_is_valid() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    every = {"tenant"} | {
        f"{section}.{name}" for section, model in sections() for name in model.model_fields
    }
    assert sorted(every - listed(text)) == []
    assert sorted(listed(text) - every) == [], "the example lists settings that do not exist"
    env = {"TELCOFLOW_API_KEY": "k", "TELCOFLOW_CONNECTOR_UUID": "c"}
    config = load_config(EXAMPLE, env=env)
    assert isinstance(config, TenantConfig) and config.tenant == "example"
