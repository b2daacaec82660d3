"""How the far end behaves when the bridge rings a human with ``call.connect``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

OutcomeKind = Literal["answered", "unanswered", "timeout"]


@dataclass(frozen=True, slots=True)
class ConnectOutcome:
    """One scripted result for one ``call.connect``; a call consumes them in order.

    - ``answered(after_s)``: the human picks up after ``after_s`` seconds (``success:true``).
      If ``after_s`` is not shorter than the ring time, the connect is unanswered instead.
    - ``unanswered()``: ``success:false, error_code:"CALL_UNANSWERED"`` at the ring time.
    - ``timeout()``: ``success:false, error_code:"TIMEOUT"`` at the ring time.
    """

    kind: OutcomeKind
    after_s: float = 0.0

    @classmethod
    def answered(cls, after_s: float = 0.5) -> ConnectOutcome:
        return cls("answered", after_s)

    @classmethod
    def unanswered(cls) -> ConnectOutcome:
        return cls("unanswered")

    @classmethod
    def timeout(cls) -> ConnectOutcome:
        return cls("timeout")


DEFAULT_CONNECT_OUTCOME = ConnectOutcome.answered(0.5)
