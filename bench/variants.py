"""Prototype optimisations of our bridge, selectable with ``callbridge bench --variant``.

The default variant is the bridge exactly as shipped. A prototype here changes the bridge only
inside the benchmark's bridge process, so its effect can be measured under the same load before
anyone changes ``adapters/`` (owned by the lead).
"""

from __future__ import annotations

from collections.abc import Callable


def _default() -> None:
    """The bridge as shipped."""


VARIANTS: dict[str, Callable[[], None]] = {"default": _default}


def apply_variant(name: str) -> None:
    VARIANTS[name]()
