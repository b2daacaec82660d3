"""The bridge's own small set of exceptions.

Adapters translate every vendor exception into one of these at the boundary, so the call
logic handles a handful of meanings instead of two SDKs' hierarchies.
"""

from __future__ import annotations


class BridgeError(Exception):
    """Base of every callbridge exception."""


class ConfigError(BridgeError):
    """A setting is missing or invalid; the message names it and says how to fix it."""


class CallGone(BridgeError):
    """The caller is gone (hung up, call terminated, voice connection closed)."""


class CallNotServed(BridgeError):
    """This process could not take the call (its voice socket would not open here: e.g. out of
    descriptors); the caller is still waiting. Never a caller hang-up: the call must be released
    so the platform, another replica or this one later can serve it."""


class PlaybackFull(BridgeError):
    """The call's outgoing audio buffer has no room for this write."""


class CommandFailed(BridgeError):
    """A call command was refused or timed out at the server."""

    def __init__(self, command: str, error_code: str | None, message: str = "") -> None:
        self.command = command
        self.error_code = error_code
        self.message = message
        super().__init__(f"{command} failed: {error_code or 'unknown'} {message}".strip())


class ModelUnavailable(BridgeError):
    """No model session could be opened, or an open one ended with an error."""

    def __init__(self, message: str, close_code: int | None = None) -> None:
        self.close_code = close_code
        super().__init__(message)
