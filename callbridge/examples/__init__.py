"""Small ADK agents for the documented use cases, ready for ``model.adk_agent``.

Each module exposes ``root_agent`` (and ``after_hours_voicemail`` also an ``app``):

- ``callbridge.examples.appointment_booking``: books, lists and cancels slots in a small SQLite
calendar;
- ``callbridge.examples.database_lookup``: answers order questions from a SQLite table;
- ``callbridge.examples.human_escalation``: hands the caller to a person with the call-control
tools;
- ``callbridge.examples.after_hours_voicemail``: takes a message, stores it, says goodbye and hangs
up.

They name no model, so callbridge runs them on the tenant's ``model.model``. Their data lives in
SQLite files under ``$CALLBRIDGE_EXAMPLES_DATA`` (default: a ``callbridge-examples`` folder in
the system temp directory), created on first use.
"""
