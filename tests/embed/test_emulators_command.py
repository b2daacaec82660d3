"""``callbridge emulators`` then ``callbridge serve`` with what it wrote: the documented way to
run your own bridge process against the emulators, followed to the letter in two processes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

CALLBRIDGE = Path(sys.executable).with_name("callbridge")


def env_from(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {key: value for key, value in pairs}


def test_serve_answers_a_call_with_the_tenant_file_the_emulators_wrote(tmp_path: Path) -> None:
    folder = tmp_path / "emu"
    serve_log = tmp_path / "serve.log"
    emulators = subprocess.Popen(
        [
            str(CALLBRIDGE),
            "emulators",
            "--dir",
            str(folder),
            "--telcoflow-port",
            "0",
            "--gemini-port",
            "0",
            "--calls",
            "1",
            "--exit-after-calls",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    serve: subprocess.Popen[str] | None = None
    try:
        assert emulators.stdout is not None
        printed = []
        for line in emulators.stdout:
            printed.append(line)
            if "callbridge serve --config" in line:
                break
        assert any("callbridge serve --config" in line for line in printed), "".join(printed)

        tenant = tomllib.loads((folder / "tenant.toml").read_text())
        assert tenant["model"]["ca_file"] == str(folder / "ca.pem")
        assert (folder / "ca.pem").read_text().startswith("-----BEGIN CERTIFICATE-----")
        env = {**os.environ, **env_from(folder / "env"), "CALLBRIDGE_SERVICE__HTTP_PORT": "0"}
        serve = subprocess.Popen(
            [str(CALLBRIDGE), "serve", "--config", str(folder / "tenant.toml")],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=serve_log.open("w"),  # a file: a full pipe would stall the bridge
        )
        rest, _ = emulators.communicate(timeout=90)
    finally:
        for proc in (emulators, serve):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
    assert serve is not None
    serve.wait(timeout=60)
    assert emulators.returncode == 0, "".join(printed) + rest
    assert "call 1: ended" in rest
    assert "call.answer" in rest, rest
    assert serve.returncode == 0, serve_log.read_text()
