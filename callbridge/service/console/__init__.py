"""The operator console: live calls, one call live, actions and history, in a browser.

Served under ``/console`` on the admin listener (``service.admin_host:admin_port``, loopback
by default; see ``callbridge.service.serve``), never on the probes and metrics listener, behind
the admin token. :class:`ConsoleHub` must be among the records' listeners so a call's page
hears of its new entries at once; :func:`create_console_app` builds the routes.
"""

from callbridge.service.console.app import ConsoleDeps, create_console_app
from callbridge.service.console.live import ConsoleHub

CONSOLE_PATH = "/console"

__all__ = ["CONSOLE_PATH", "ConsoleDeps", "ConsoleHub", "create_console_app"]
