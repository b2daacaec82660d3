"""Work-arounds for telcoflow SDK defects that would take a long-running bridge off the air.

1. The session manager's event bus (abxbus ``EventBus``) keeps at most 100 events and, with
   its default ``max_history_drop=False``, rejects every new event once full: an unmodified
   ``SessionManager`` stops receiving calls after about 33 calls (telcoflow-wire.md,
   section 10). We switch the bus to drop its oldest *completed* history instead. The bus
   stays bounded (100 entries); in-flight events are never dropped.
2. Closed sessions are never removed from the manager's session registry (only a
   reconnect clears it), so each call leaks a ``Session`` and its per-session event bus.
   We remove a session from the registry once it is closed.

Both reach into private attributes, so :func:`check_sdk_internals` runs at start-up and
fails loudly, naming what changed, if a future SDK version moved them.

Checked against: telcoflow 1.0.0 with abxbus 2.5.79.
"""

from __future__ import annotations

from typing import Any

import telcoflow

from callbridge.bridge.errors import BridgeError

CHECKED_VERSIONS = {("1.0.0", "2.5.79")}


class SdkIncompatible(BridgeError):
    """The installed telcoflow SDK no longer has the internals our fixes rely on."""


def _bus_history(manager: Any) -> Any:
    bus = getattr(manager, "_bus", None)
    history = getattr(bus, "event_history", None)
    if history is None or not hasattr(history, "max_history_drop"):
        raise SdkIncompatible(
            f"telcoflow {telcoflow.__version__}: SessionManager._bus.event_history."
            "max_history_drop is missing; the event-bus history fix (calls stop arriving "
            "after ~33) cannot be applied. Re-check adapters/telcoflow/sdk_fixes.py "
            "against this SDK version before deploying."
        )
    return history


def _registry(manager: Any) -> dict[str, Any]:
    registry = getattr(manager, "_registry", None)
    if not isinstance(registry, dict):
        raise SdkIncompatible(
            f"telcoflow {telcoflow.__version__}: SessionManager._registry is not a dict; "
            "closed sessions could not be released. Re-check adapters/telcoflow/sdk_fixes.py."
        )
    return registry


def check_sdk_internals(manager: Any) -> None:
    """Raise :class:`SdkIncompatible` unless every internal our fixes touch is present."""
    _bus_history(manager)
    _registry(manager)


def apply_fixes(manager: Any) -> None:
    """Apply fix 1 now (fix 2 is :func:`release_session`, called per closed session)."""
    history = _bus_history(manager)
    history.max_history_drop = True
    _registry(manager)


def has_session(manager: Any, session_id: str) -> bool:
    """Whether the SDK still holds this session (a reconnect force-closes and drops them)."""
    return session_id in _registry(manager)


def release_session(manager: Any, session_id: str) -> None:
    """Forget a closed session so the registry does not grow with every call."""
    _registry(manager).pop(session_id, None)


def installed_versions() -> tuple[str, str]:
    """(telcoflow, abxbus) versions, for the start-up log line."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        bus_version = version("abxbus")
    except PackageNotFoundError:
        bus_version = "unknown"
    return str(telcoflow.__version__), bus_version
