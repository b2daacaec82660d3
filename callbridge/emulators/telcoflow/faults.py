"""One-shot fault injection for commands (``fail_next`` / ``delay_next``).

Voice commands take both; ``session.open`` on the SM-WS takes ``fail_next`` (its error code
is answered, e.g. ``SESSION_BUSY`` for a race lost to another replica).

Each injected fault applies to the next command of that name only, in the order they were
queued, so a test can script e.g. "the first interrupt fails, the second is slow".
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class InjectedFailure:
    """Answer the command with ``success:false`` and this code instead of performing it."""

    error_code: str
    error_message: str


class FaultPlan:
    """Queued failures and delays, keyed by command name (e.g. ``"agent.interrupt"``)."""

    def __init__(self) -> None:
        self._failures: defaultdict[str, deque[InjectedFailure]] = defaultdict(deque)
        self._delays: defaultdict[str, deque[float]] = defaultdict(deque)

    def fail_next(self, command: str, error_code: str, error_message: str) -> None:
        self._failures[command].append(InjectedFailure(error_code, error_message))

    def delay_next(self, command: str, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a delay cannot be negative")
        self._delays[command].append(seconds)

    def take_failure(self, command: str) -> InjectedFailure | None:
        queue = self._failures.get(command)
        return queue.popleft() if queue else None

    def take_delay(self, command: str) -> float:
        queue = self._delays.get(command)
        return queue.popleft() if queue else 0.0
