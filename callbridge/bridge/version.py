"""The installed callbridge version (``callbridge --version``, ``callbridge_build_info``)."""

from __future__ import annotations

from importlib import metadata


def version() -> str:
    """The distribution's version from ``pyproject.toml``, as installed."""
    try:
        return metadata.version("callbridge")
    except metadata.PackageNotFoundError:
        return "unknown"
