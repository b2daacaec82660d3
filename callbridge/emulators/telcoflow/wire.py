"""Telcoflow wire frames the emulator sends, built as plain dicts (see telcoflow-wire.md).

Every builder here produces a frame the unmodified telcoflow 1.0.0 SDK accepts; keeping them in
one place makes that easy to check against the wire notes. No I/O.
"""

from __future__ import annotations

import json
from typing import Any

JsonObject = dict[str, Any]

SM_PATH = "/v1/agent/session-manager"
VOICE_PATH_PREFIX = "/v1/agent/voice/"
SESSIONS_REST_PATH = "/public/v1/sessions"

CLOSE_REASONS = ("SDK_REQUEST", "FORCE_CLOSE", "CALL_TERMINATED")


def parse_object(text: str | bytes) -> JsonObject | None:
    """A JSON object with a string ``type``, or ``None`` for anything else."""
    try:
        obj = json.loads(text)
    except (ValueError, TypeError):
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
        return None
    return obj


# -- session-manager plane (camelCase) -------------------------------------------------------


def setup_done(sm_ws_id: str) -> JsonObject:
    return {"type": "setup.done", "smWsId": sm_ws_id}


def response_ok(req_id: str, content: JsonObject) -> JsonObject:
    return {"type": "response", "reqId": req_id, "ok": True, "content": content}


def response_error(req_id: str, code: str, content: JsonObject | None = None) -> JsonObject:
    return {
        "type": "response",
        "reqId": req_id,
        "ok": False,
        "errorCode": code,
        "errorContent": content or {},
    }


def session_object(
    session_id: str, remote: str, local: str, opened_at: int, *, state: str = "OPEN"
) -> JsonObject:
    """The ``session`` object of a ``session.open`` answer and of the REST listing."""
    return {
        "id": session_id,
        "channel": "TELCO",
        "initiator": "CONNECTOR",
        "state": state,
        "remoteAddress": remote,
        "localAddress": local,
        "openedAt": opened_at,
        "closedAt": None,
    }


def session_notify(
    session_id: str, remote: str, local: str, activity: str, created_at: int
) -> JsonObject:
    return {
        "type": "session.notify",
        "sessionId": session_id,
        "channel": "TELCO",
        "remoteAddress": remote,
        "localAddress": local,
        "activity": activity,
        "createdAt": created_at,
    }


def call_in(
    session_id: str, call_id: str, caller: str, callee: str, url: str, token: str
) -> JsonObject:
    return {
        "type": "call.in",
        "sessionId": session_id,
        "callId": call_id,
        "orgUuid": "org-emulator",
        "from": caller,
        "to": callee,
        "url": url,
        "token": token,
    }


def session_closed(session_id: str, reason: str) -> JsonObject:
    if reason not in CLOSE_REASONS:
        raise ValueError(f"the SDK maps unknown close reasons to FORCE_CLOSE: {reason!r}")
    return {"type": "session.closed", "sessionId": session_id, "reason": reason}


# -- voice plane (snake_case inside data) ----------------------------------------------------


def command_ok(command_id: str, result: Any = None) -> JsonObject:
    return {
        "type": "command_response",
        "data": {"command_id": command_id, "success": True, "result": result},
    }


def command_error(command_id: str, code: str, message: str) -> JsonObject:
    return {
        "type": "command_response",
        "data": {
            "command_id": command_id,
            "success": False,
            "error_code": code,
            "error_message": message,
        },
    }


def call_event(event: str, **extra: Any) -> JsonObject:
    return {"type": "call_event", "data": {"event": event, **extra}}


def buffer_request(requested_bytes: int, prefer_frame_bytes: int) -> JsonObject:
    return {
        "type": "buffer_request",
        "data": {
            "requested_bytes": requested_bytes,
            "prefer_audio_frame_bytes": prefer_frame_bytes,
            "channelId": 0,
        },
    }
