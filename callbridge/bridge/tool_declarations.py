"""A user tool's declaration for the model, and its arguments checked, from its signature.

``tools.custom`` names plain async functions. What the model is told about their parameters
must match what the function accepts, or the model sends ``"3"`` for an ``int``, free text for
a ``Literal``, a string for a ``list[str]``. Pydantic reads the signature the way Python does
(string annotations from ``from __future__ import annotations`` resolved with the function's
own globals), writes the JSON schema declared to the model (``parametersJsonSchema``: enums,
arrays with their item type, nullable optionals, defaults) and validates the model's
arguments before the call: a bad argument becomes a :class:`ToolArgumentError` the dispatcher
answers as a tool error (``TOOL_CALL_FAILED``), never an exception inside the user's code.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pydantic

from callbridge.bridge.errors import ConfigError

__all__ = ["DeclaredFunction", "ToolArgumentError", "declare_function"]

_PARAMETER_KINDS = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


class ToolArgumentError(ValueError):
    """The model's arguments do not fit the tool's signature (message names each field)."""


@dataclass(frozen=True)
class DeclaredFunction:
    """A callable's declaration (description, JSON-schema parameters) and argument checker."""

    name: str
    description: str
    parameters: dict[str, Any]
    _arguments: type[pydantic.BaseModel]

    def validate(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """The keyword arguments to call with, converted to the annotated types.

        Raises :class:`ToolArgumentError` naming every field that is missing, unknown or of
        the wrong type.
        """
        try:
            checked = self._arguments.model_validate(dict(args))
        except pydantic.ValidationError as exc:
            raise ToolArgumentError(
                f"invalid arguments for {self.name}: {_describe(exc)}"
            ) from None
        return {field: getattr(checked, field) for field in type(checked).model_fields}


def declare_function(name: str, fn: Callable[..., Any]) -> DeclaredFunction:
    """Build the declaration of ``fn`` as tool ``name``; ``ConfigError`` if it cannot be."""
    where = f"tools.custom.{name}"
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception as exc:  # NameError for an unresolvable string annotation, mostly
        raise ConfigError(f"{where}: cannot resolve the annotations of {fn!r}: {exc}") from None
    fields: dict[str, Any] = {}
    for parameter in inspect.signature(fn).parameters.values():
        if parameter.kind not in _PARAMETER_KINDS:
            if parameter.kind is inspect.Parameter.VAR_KEYWORD:
                continue  # **kwargs: nothing to declare
            raise ConfigError(
                f"{where}: parameter {parameter.name!r} is {parameter.kind.description}; the "
                "model passes keyword arguments only"
            )
        annotation = hints.get(parameter.name, Any)
        default = ... if parameter.default is inspect.Parameter.empty else parameter.default
        fields[parameter.name] = (annotation, default)
    try:
        arguments = pydantic.create_model(
            f"{name}_arguments",
            __config__=pydantic.ConfigDict(extra="forbid", arbitrary_types_allowed=False),
            **fields,
        )
        schema = arguments.model_json_schema()
    except (pydantic.PydanticSchemaGenerationError, pydantic.PydanticUserError, TypeError) as exc:
        raise ConfigError(
            f"{where}: a parameter type cannot be declared to the model: {exc}"
        ) from None
    return DeclaredFunction(
        name=name,
        description=inspect.getdoc(fn) or name,
        parameters=_clean(_inline(schema, schema.get("$defs", {}), ())),
        _arguments=arguments,
    )


def _inline(node: Any, defs: Mapping[str, Any], seen: tuple[str, ...]) -> Any:
    """Replace ``$ref`` with the definition (enum classes, nested models) so one flat schema
    is declared; a recursive type cannot be flattened and is refused."""
    if isinstance(node, list):
        return [_inline(item, defs, seen) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        key = ref.removeprefix("#/$defs/")
        if key in seen:
            raise ConfigError(f"tool parameter type {key} is recursive; declare a flat type")
        rest = {k: v for k, v in node.items() if k != "$ref"}
        return {**_inline(defs[key], defs, (*seen, key)), **_inline(rest, defs, seen)}
    return {k: _inline(v, defs, seen) for k, v in node.items() if k != "$defs"}


def _clean(node: Any, *, properties: bool = False) -> Any:
    """Drop pydantic's generated ``title`` keys (noise to the model); keep property names."""
    if isinstance(node, list):
        return [_clean(item) for item in node]
    if not isinstance(node, dict):
        return node
    if properties:  # keys are parameter names, one of which may well be "title"
        return {k: _clean(v) for k, v in node.items()}
    return {
        k: _clean(v, properties=k == "properties")
        for k, v in node.items()
        if not (k == "title" and isinstance(v, str))
    }


def _describe(exc: pydantic.ValidationError) -> str:
    problems = []
    for error in exc.errors(include_url=False):
        field = ".".join(str(part) for part in error["loc"]) or "arguments"
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "not a parameter of this tool"
        elif error["type"] != "missing":
            message += f" (got {error['input']!r})"
        problems.append(f"{field}: {message}")
    return "; ".join(problems)
