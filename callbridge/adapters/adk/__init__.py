"""ADK back end: a ``ModelConnector`` over ``Runner.run_live``, call-control tools for ADK agents,
and a plugin that reports an agent's tool runs to the call.

- :class:`AdkConnector` / :class:`AdkSession`: the bridge's model port for ADK agents.
- :func:`call_control_tools`: ``transfer_to_human``, ``end_call``, ``set_agent_mode`` as ADK tools.
- :class:`CallbridgePlugin`: tool outcomes, warnings and counters into the call record; it
  owns the agent's live calls, which the connector's sessions fill (the bridge binds each call
  through the model port's ``bind_call``) and its tools read.
"""

from callbridge.adapters.adk.connector import AdkConnector
from callbridge.adapters.adk.plugin import CallbridgePlugin
from callbridge.adapters.adk.session import AdkSession
from callbridge.adapters.adk.tools import CallControlTool, call_control_tools

__all__ = [
    "AdkConnector",
    "AdkSession",
    "CallControlTool",
    "CallbridgePlugin",
    "call_control_tools",
]
