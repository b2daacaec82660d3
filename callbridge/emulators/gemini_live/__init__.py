"""A protocol-faithful local Gemini Live server for tests, the demo and the benchmark.

The unmodified `google-genai` client and ADK `Runner.run_live` talk to it over TLS on 127.0.0.1.
Behaviour is scripted (`Script` of `Turn`s made of `Speak`, `CallTool` and `Pause` steps) and
faults are injected per connection (`Fault`). See `server.GeminiLiveEmulator`.
"""

from .log import SessionLog
from .script import CallTool, Fault, Pause, Script, Speak, Step, Turn
from .server import GeminiLiveEmulator

__all__ = [
    "CallTool",
    "Fault",
    "GeminiLiveEmulator",
    "Pause",
    "Script",
    "SessionLog",
    "Speak",
    "Step",
    "Turn",
]
