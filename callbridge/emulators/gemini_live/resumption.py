"""Conversations that outlive one connection, and the resumption handles that point at them.

A handle captures the conversation's resumable state when it is issued (which script turn comes
next, the transcript so far, the token context). Resuming restores that snapshot, so a client
that resumes from an old handle replays what it lost, as with the real service. Handles expire
`ttl_s` after they were issued (the Gemini API documents 2 hours). Only the latest
`per_conversation` handles of a conversation are kept, which bounds memory in long soaks; clients
resume from their latest handle anyway.
"""

from __future__ import annotations

import copy
import itertools
import secrets
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field

from websockets.asyncio.server import ServerConnection
from websockets.protocol import State

from .script import Script

__all__ = ["Conversation", "ConversationState", "HandleStore"]

_conversation_ids = itertools.count(1)


@dataclass
class ConversationState:
    """The part of a conversation that a resumption handle restores."""

    next_turn: int = 0
    greeting_pending: bool = True
    transcript: list[tuple[str, str]] = field(default_factory=list)  # (role, text)
    context_text_tokens: int = 0
    context_audio_tokens: int = 0


@dataclass
class Conversation:
    """One logical Live session across its connections."""

    script: Script
    state: ConversationState = field(default_factory=ConversationState)
    id: str = field(default_factory=lambda: f"conv-{next(_conversation_ids)}")
    connections: int = 0
    active: ServerConnection | None = None
    resume_rejections_left: int = -1  # -1: not initialised from the script yet

    def socket_open(self) -> bool:
        """True if the conversation's latest socket is still open (resuming now fails 1011)."""
        return self.active is not None and self.active.state is State.OPEN

    def take_resume_rejection(self) -> bool:
        """Consume one `Fault.reject_resume` if any is left."""
        if self.resume_rejections_left < 0:
            self.resume_rejections_left = sum(
                f.times for f in self.script.faults_of("reject_resume")
            )
        if self.resume_rejections_left > 0:
            self.resume_rejections_left -= 1
            return True
        return False


@dataclass(frozen=True, slots=True)
class _Entry:
    conversation: Conversation
    state: ConversationState
    issued_at: float


class HandleStore:
    """Issued handles; shared by every connection of one emulator."""

    def __init__(self, ttl_s: float = 7200.0, per_conversation: int = 16) -> None:
        self._ttl_s = ttl_s
        self._per_conversation = per_conversation
        self._entries: dict[str, _Entry] = {}
        self._by_conversation: defaultdict[str, deque[str]] = defaultdict(deque)

    def issue(self, conversation: Conversation) -> str:
        """Snapshot the conversation and return a fresh opaque handle for it."""
        self._expire()
        handle = f"{conversation.id}-{secrets.token_urlsafe(12)}"
        snapshot = copy.deepcopy(conversation.state)
        self._entries[handle] = _Entry(conversation, snapshot, time.monotonic())
        recent = self._by_conversation[conversation.id]
        recent.append(handle)
        while len(recent) > self._per_conversation:
            self._entries.pop(recent.popleft(), None)
        return handle

    def lookup(self, handle: str) -> tuple[Conversation, ConversationState] | None:
        """The conversation and a copy of its snapshot, or None if unknown or expired."""
        self._expire()
        entry = self._entries.get(handle)
        if entry is None:
            return None
        return entry.conversation, copy.deepcopy(entry.state)

    def _expire(self) -> None:
        # Entries are inserted in issue order, so the stale ones are at the front.
        cutoff = time.monotonic() - self._ttl_s
        while self._entries:
            oldest = next(iter(self._entries))
            entry = self._entries[oldest]
            if entry.issued_at >= cutoff:
                break
            del self._entries[oldest]
            recent = self._by_conversation.get(entry.conversation.id)
            if recent and recent[0] == oldest:
                recent.popleft()
                if not recent:
                    del self._by_conversation[entry.conversation.id]
