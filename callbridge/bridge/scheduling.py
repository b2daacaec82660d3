"""When the model should react to a tool's result: the ``scheduling`` of each result.

With asynchronous tools (NON_BLOCKING) the model goes on talking and listening while a tool
runs; the result's ``scheduling`` says what it does when the result arrives:

- ``INTERRUPT``: stop what it is saying and react now;
- ``WHEN_IDLE``: react once it is idle (the Live API's default);
- ``SILENT``: take the result into context without generating anything.

Every built-in tool's outcome has a deliberate mode (:data:`POLICY`); results of the tenant's
own tools react when idle. Both back ends read :func:`result_scheduling`: the raw one when it
sends the result, the ADK one when ADK sends it (``callbridge.adapters.adk.model``). A BLOCKING
call's
result carries none (the model is waiting for it anyway), and Vertex AI ignores the field.

=================  ==========================  ===========  ========================================
tool               outcome (``status``)        scheduling   why
=================  ==========================  ===========  ========================================
transfer_to_human  ``connected`` (leaving)     SILENT       the agent leaves; a word now would be
                                                            heard on top of the human
transfer_to_human  ``connected`` (whisper,     WHEN_IDLE    brief the human once the sentence
                   barge, spy)                              is done (in spy the bridge mutes it: the
                                                            model keeps following the call)
transfer_to_human  ``unanswered``, ``failed``, INTERRUPT    the caller is waiting for a person in
                   an error                                 silence: tell them at once
transfer_to_human  ``already_connected``       WHEN_IDLE    nothing changed; no reason to cut in
end_call           ``ending_call``,            SILENT       the farewell was said; any reaction
                   ``leaving_call``                         would delay the hang-up or be cut off
end_call           an error                    WHEN_IDLE    say something once the farewell is done
set_agent_mode     ``ok``                      SILENT       a coaching-mode change needs no words
set_agent_mode     ``refused``, ``failed``     WHEN_IDLE    the agent should know, not cut in
any tool           ``caller_gone``,            SILENT       nobody left to talk to
                   ``unavailable``
other tools        anything                    WHEN_IDLE    the Live API's default
=================  ==========================  ===========  ========================================
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from callbridge.bridge.models import Scheduling

_BY_STATUS: Mapping[str, Mapping[str, Scheduling]] = {
    "transfer_to_human": {
        "unanswered": "INTERRUPT",
        "failed": "INTERRUPT",
        "already_connected": "WHEN_IDLE",
    },
    "end_call": {"ending_call": "SILENT", "leaving_call": "SILENT"},
    "set_agent_mode": {"ok": "SILENT", "refused": "WHEN_IDLE", "failed": "WHEN_IDLE"},
}
_ERROR: Mapping[str, Scheduling] = {"transfer_to_human": "INTERRUPT"}
_NOBODY = frozenset({"caller_gone", "unavailable"})

POLICY = _BY_STATUS
"""Built-in tools: status -> scheduling (the rest of the rules are in the module docstring)."""


def result_scheduling(tool: str, response: Mapping[str, Any]) -> Scheduling:
    """The scheduling for ``tool``'s result ``response`` (see the table above)."""
    status = str(response.get("status", ""))
    if status in _NOBODY:
        return "SILENT"
    if tool == "transfer_to_human" and status == "connected":
        if response.get("agent") == "leaving":
            return "SILENT"
        return "WHEN_IDLE"
    if not status and "error" in response:
        return _ERROR.get(tool, "WHEN_IDLE")
    return _BY_STATUS.get(tool, {}).get(status, "WHEN_IDLE")
