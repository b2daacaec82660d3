"""A local, protocol-faithful Telcoflow server for tests, the demo and the benchmark.

The unmodified ``telcoflow`` 1.0.0 SDK connects to it with
``SessionManagerConfig.create(api_key=..., connector_uuid=..., base_url=emu.base_url)``.
See ``server.TelcoflowEmulator`` for the entry point and ``__main__`` for the CLI.
"""

from .call import CallEndedError, EmulatedCall
from .outcomes import ConnectOutcome
from .record import CallRecord, CommandLog, PulledFrame, write_stereo_wav
from .script import CallerScript, HangUp, Pause, Say, WaitForAgentAudio, resample_pcm
from .server import TelcoflowEmulator

__all__ = [
    "CallEndedError",
    "CallRecord",
    "CallerScript",
    "CommandLog",
    "ConnectOutcome",
    "EmulatedCall",
    "HangUp",
    "Pause",
    "PulledFrame",
    "Say",
    "TelcoflowEmulator",
    "WaitForAgentAudio",
    "resample_pcm",
    "write_stereo_wav",
]
