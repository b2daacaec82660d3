"""User tools (``tools.custom``) are declared with their real parameter types and their
arguments are checked before the call.

Whole calls through the unmodified google-genai client and both emulators: the declaration is
read from the setup the Gemini emulator received, the tool results from the tool responses it
received.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from callbridge.bridge.errors import ConfigError
from callbridge.bridge.tool_declarations import ToolArgumentError, declare_function
from callbridge.bridge.warnings import WarningCode
from callbridge.emulators.gemini_live import CallTool, Script, Turn
from callbridge.emulators.stack import LocalStack
from callbridge.emulators.telcoflow import CallerScript, HangUp, Pause
from tests.control import declared_tools
from tests.control.kit import Warnings, agent_says

TOOL = "tests.control.declared_tools:open_ticket"


@pytest.fixture(autouse=True)
def calls() -> Iterator[list[dict[str, Any]]]:
    declared_tools.CALLS.clear()
    yield declared_tools.CALLS
    declared_tools.CALLS.clear()


def declared(setup: dict[str, Any], name: str) -> dict[str, Any]:
    for tool in setup.get("tools") or []:
        for declaration in tool.get("function_declarations") or []:
            if declaration["name"] == name:
                return dict(declaration)
    raise AssertionError(f"{name} was not declared")


async def test_declaration_has_real_types_and_a_bad_argument_is_a_tool_error(
    calls: list[dict[str, Any]],
) -> None:
    warnings = Warnings()
    good = {"tags": ["billing", "refund"], "priority": "high", "callback_in_min": "15"}
    bad = {"tags": "billing", "priority": "urgent", "callback_in_min": 15}
    script = Script(
        greeting=Turn(
            [
                agent_says(0.3, "Let me open a ticket."),
                CallTool("open_ticket", good),
                CallTool("open_ticket", bad),
                agent_says(0.3, "Done."),
            ]
        )
    )
    overrides = {"tools": {"custom": {"open_ticket": TOOL}}}
    async with LocalStack(script, overrides=overrides, warning_handlers=[warnings]) as stack:
        await stack.place_call(CallerScript([Pause(3.0), HangUp()])).ended(timeout=30)
        session = stack.gemini.sessions[0]

    declaration = declared(session.setup, "open_ticket")
    assert declaration["description"] == "Open a support ticket for the caller."
    assert declaration["parameters_json_schema"] == {
        "type": "object",
        "properties": {
            "tags": {"type": "array", "items": {"type": "string"}},
            "priority": {"type": "string", "enum": ["low", "high"]},
            "callback_in_min": {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": None},
            "urgent": {"type": "boolean", "default": False},
        },
        "required": ["tags", "priority"],
        "additionalProperties": False,
    }

    # The good call reached the function with the annotated types (the string "15" became 15).
    assert calls == [
        {"tags": ["billing", "refund"], "priority": "high", "callback_in_min": 15, "urgent": False}
    ]
    first, second = session.tool_responses
    assert first["response"] == {"ticket": "T-1", "priority": "high"}
    # The bad one never reached it: the model got an error naming each field, the call went on.
    error = second["response"]["error"]
    assert "tags: Input should be a valid list" in error
    assert "priority: Input should be 'low' or 'high' (got 'urgent')" in error
    [warning] = warnings.of(WarningCode.TOOL_CALL_FAILED)
    assert warning.details["tool"] == "open_ticket"
    assert "priority" in warning.description


def test_arguments_are_checked_by_name() -> None:
    declaration = declare_function("open_ticket", declared_tools.open_ticket)
    assert declaration.validate({"tags": [], "priority": "low"}) == {
        "tags": [],
        "priority": "low",
        "callback_in_min": None,
        "urgent": False,
    }
    with pytest.raises(ToolArgumentError, match="tags: Field required"):
        declaration.validate({"priority": "low"})
    with pytest.raises(ToolArgumentError, match="colour: not a parameter of this tool"):
        declaration.validate({"tags": [], "priority": "low", "colour": "red"})
    with pytest.raises(ToolArgumentError, match=r"callback_in_min: .*integer"):
        declaration.validate({"tags": [], "priority": "low", "callback_in_min": "soon"})


async def unresolvable(when: Later) -> None:  # type: ignore[name-defined]  # noqa: F821
    """A tool whose annotation names a type that does not exist."""


def test_an_annotation_that_cannot_be_resolved_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"tools\.custom\.broken: cannot resolve"):
        declare_function("broken", unresolvable)
