"""A throwaway PostgreSQL cluster for tests, started from the installed server binaries.

Why not a system service: tests must not depend on (or disturb) whatever runs on the machine.
``PgCluster`` runs ``initdb`` into a fresh temp dir, starts ``postgres`` on a free port on
127.0.0.1 with its socket in that dir, and removes everything on stop. PostgreSQL refuses to
run as root, so when the tests run as root the server runs as the ``postgres`` user (created
by the Debian package; ``scripts/install-test-services.sh`` installs it), via ``runuser``.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

SERVER_USER = "postgres"
DATABASE = "postgres"
ROLE = "callbridge"


def find_bindir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<v>/bin`` with initdb and pg_ctl, else one on PATH."""
    candidates = sorted(
        (Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)
    for bindir in candidates:
        if (bindir / "pg_ctl").exists():
            return bindir
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PgCluster:
    """initdb + pg_ctl in a temp dir; ``url`` is an asyncpg SQLAlchemy URL."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="callbridge-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = 0
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam(SERVER_USER)
            except KeyError:
                raise RuntimeError(
                    f"running as root and no {SERVER_USER!r} user to run PostgreSQL as; "
                    "run scripts/install-test-services.sh"
                ) from None
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self._as_user = ["runuser", "-u", SERVER_USER, "--"]

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://{ROLE}@127.0.0.1:{self.port}/{DATABASE}"

    def _run(self, *args: str) -> None:
        # cwd: runuser keeps the cwd, which the server user may not be allowed to enter.
        result = subprocess.run(
            [*self._as_user, *args],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if result.returncode != 0:
            log = self.log.read_text(errors="replace") if self.log.exists() else ""
            raise RuntimeError(
                f"{' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout}{result.stderr}{log}"
            )

    def start(self) -> None:
        """Create the cluster and start its server on a free port."""
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            ROLE,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        last_error: RuntimeError | None = None
        for _ in range(3):  # another process may take the free port before the server does
            self.port = _free_port()
            try:
                self.start_server()
                return
            except RuntimeError as error:
                last_error = error
        assert last_error is not None
        raise last_error

    def start_server(self) -> None:
        """Start (or restart, on the same port) the server of the existing cluster."""
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c full_page_writes=off"
        )
        pg_ctl = str(self.bindir / "pg_ctl")
        self._run(pg_ctl, "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def stop_server(self) -> None:
        """Stop the server, disconnecting every client; the cluster stays on disk."""
        if (self.data / "postmaster.pid").exists():
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def stop(self) -> None:
        """Stop the server and remove the cluster."""
        try:
            self.stop_server()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
