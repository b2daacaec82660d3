"""structlog set-up: JSON in containers, readable colours on a terminal, secrets never logged.

``call_id``, ``tenant`` and ``session_id`` are bound per call with structlog's contextvars,
so every line a call's tasks write carries them.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import structlog

SECRET_KEYS = re.compile(r"(api[_-]?key|token|secret|password|authorization)", re.IGNORECASE)
AUDIO_KEYS = {"pcm", "audio", "data"}


MIN_SECRET_CHARS = 6
"""Shorter configured values are not redacted by value: they would blank ordinary words."""

_secret_values: tuple[str, ...] = ()
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")


def safe_url(url: str) -> str:
    """``url`` without its userinfo (``user:password@``), query or fragment: safe to log."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = f"{host}:{parts.port}" if parts.port else host
    except ValueError:
        return _URL_USERINFO.sub(r"\g<scheme>***@", url)
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def register_secrets(values: Iterable[str | None]) -> None:
    """Values (API keys, tokens, webhook secrets and URL passwords) scrubbed from every line.

    The final redaction pass: whatever a library or an exception message puts in a log line,
    a configured secret's *value* never reaches the output, whatever key carries it.
    """
    global _secret_values
    found = {v for v in values if v and len(v) >= MIN_SECRET_CHARS}
    _secret_values = tuple(sorted(found, key=len, reverse=True))


def scrub(text: str) -> str:
    """``text`` with URL userinfo and every registered secret value replaced by ``***``."""
    if "@" in text:
        text = _URL_USERINFO.sub(r"\g<scheme>***@", text)
    for value in _secret_values:
        if value in text:
            text = text.replace(value, "***")
    return text


def _scrub_value(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, list | tuple):
        return type(value)(_scrub_value(v) for v in value)
    if isinstance(value, dict):
        return {k: _scrub_value(v) for k, v in value.items()}
    if isinstance(value, BaseException):
        return scrub(f"{type(value).__name__}: {value}")
    return value


def redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Drop secrets and raw audio from every log event, whoever logged them.

    By key (``api_key``, ``token``...), then by value: URL userinfo and the configured
    secrets (:func:`register_secrets`) anywhere in a string.
    """
    for key in list(event):
        if SECRET_KEYS.search(key):
            event[key] = "***"
        elif key in AUDIO_KEYS and isinstance(event[key], bytes | bytearray):
            event[key] = f"<{len(event[key])} bytes>"
        else:
            event[key] = _scrub_value(event[key])
    return event


def scrub_rendered(_: Any, __: str, event: Any) -> Any:
    """After rendering (tracebacks included): the same value pass over the finished line."""
    return scrub(event) if isinstance(event, str) else event


def configure_logging(
    fmt: Literal["auto", "json", "console"] = "auto", level: int = logging.INFO
) -> None:
    """Configure structlog (and route stdlib logging, e.g. the SDKs', through it)."""
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info,
            renderer,
            scrub_rendered,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        # One write() per line (print() makes two: the text, then the newline). With
        # service.workers > 1 several processes share this stderr, and PYTHONUNBUFFERED (set
        # in the image) sends every write straight to the pipe: two lines written at the same
        # instant would interleave into one that no collector parses.
        logger_factory=structlog.WriteLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[*shared, renderer, scrub_rendered], foreign_pre_chain=[]
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(level, logging.WARNING))
