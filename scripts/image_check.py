"""Build the container image's Python environment without Docker, then serve a real call with it.

``docker build`` cannot run on the CI machines. This replays the Dockerfile instead: the builder
stage's ``ENV``, ``WORKDIR``, ``COPY`` and ``RUN`` lines in order, exactly as written, with the
image paths (``/opt/callbridge``, ``/src``) moved under a scratch directory. An instruction it
does not know stops it, so the check cannot silently drift from the Dockerfile.

Then it runs the image's ``ENTRYPOINT`` + ``CMD`` from that environment (which holds only
``bridge`` and ``adapters``, as the image does) against the two emulators, started from the
development environment: ``/healthz``, ``/readyz`` once Telcoflow is connected, one whole
bridged call, ``/metrics`` counting it, and SIGTERM draining to exit 0.

Last, the documented derived image (``examples/derived-image``: ``FROM callbridge``, the
user's agent package and tenant file added) is replayed on top the same way, its context
being that folder. It serves a call with its own tenant file (endpoints from the environment,
as a deployment sets them) against ``callbridge emulators``, whose scenario has the model call
the agent's own tool: the tool must have run inside the image's environment.

    .venv/bin/python scripts/image_check.py [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
IMAGE_PATHS = ("/opt/callbridge", "/src", "/etc/callbridge", "/var/lib/callbridge")
API_KEY, CONNECTOR = "image-check-key", "image-check-connector"
DERIVED = REPO / "examples" / "derived-image"
DERIVED_TOOL = "request_callback"
"""The derived example agent's tool; it appends each request to ``callbacks.jsonl``."""
DERIVED_SCENARIO = f"""
[[turn]]
caller = "Could somebody call me back about my order?"
steps = [
  {{ tool = "{DERIVED_TOOL}", args = {{ reason = "order question from the image check" }} }},
  {{ say = "A colleague will call you back. Goodbye!" }},
  {{ tool = "end_call", args = {{ reason = "callback requested" }} }},
]
"""


class CheckFailed(RuntimeError):
    """The image's environment does not build or does not serve."""


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined: list[str] = []
    pending = ""
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    out = []
    for line in joined:
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def stages(steps: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    """The steps split at each ``FROM`` (the ``FROM`` line first in each stage)."""
    found: list[list[tuple[str, str]]] = []
    for step in steps:
        if step[0] == "FROM":
            found.append([])
        if found:
            found[-1].append(step)
    if len(found) != 2:
        raise CheckFailed(f"expected a builder and a runtime stage, found {len(found)} FROM lines")
    return found


class Replay:
    """Runs Dockerfile steps on this machine, image paths mapped under ``root``."""

    def __init__(self, root: Path, python: str) -> None:
        self.root = root
        self.context = REPO  # where COPY sources are read from
        shims = root / "shims"  # the image's `python` is 3.11: point the name at ours
        shims.mkdir(parents=True)
        (shims / "python").symlink_to(python)
        self.env = {**os.environ, "PATH": f"{shims}{os.pathsep}{os.environ.get('PATH', '')}"}
        for name in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"):
            self.env.pop(name, None)  # nothing of the development environment leaks in
        self.cwd = root

    def path(self, text: str) -> str:
        """``text`` with every image path moved under ``root``."""
        pattern = "|".join(re.escape(p) for p in IMAGE_PATHS)
        return re.sub(
            rf"(?<![\w./-])({pattern})(?=$|[/\s:\"'])", lambda m: f"{self.root}{m[1]}", text
        )

    def expand(self, text: str) -> str:
        return re.sub(r"\$\{?(\w+)\}?", lambda m: self.env.get(m[1], ""), self.path(text))

    def step(self, word: str, args: str, *, runtime: bool = False) -> None:
        if word == "RUN" and runtime:
            # The runtime stage only adds the unprivileged user and its directories: not
            # something to do to this machine (the paths exist under the scratch root).
            print(f"skipped in the runtime stage: RUN {args}", flush=True)
            return
        if word in ("FROM", "LABEL", "USER", "EXPOSE", "HEALTHCHECK", "STOPSIGNAL"):
            return  # nothing to install; USER/HEALTHCHECK are covered by test_deploy.py
        if word in ("ENTRYPOINT", "CMD"):
            return  # run by serve_a_call
        if word == "ENV":
            for pair in shlex.split(args):
                key, _, value = pair.partition("=")
                self.env[key] = self.expand(value)
        elif word == "WORKDIR":
            self.cwd = Path(self.expand(args))
            self.cwd.mkdir(parents=True, exist_ok=True)
        elif word == "COPY":
            self.copy(shlex.split(args))
        elif word == "RUN":
            print(f"+ RUN {args}", flush=True)
            done = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", self.path(args)], cwd=self.cwd, env=self.env
            )
            if done.returncode:
                raise CheckFailed(f"RUN {args!r} failed with exit code {done.returncode}")
        else:
            raise CheckFailed(f"the image check does not know the Dockerfile instruction {word}")

    def copy(self, words: list[str]) -> None:
        if words and words[0].startswith("--from="):
            sources, dest = words[1:-1], self.path(words[-1])
            for source in sources:
                if self.path(source) != dest:
                    raise CheckFailed(f"COPY --from must keep paths ({source} -> {dest})")
            return  # the builder's files are already where the runtime stage wants them
        if any(w.startswith("--") for w in words):
            raise CheckFailed(f"the image check does not know COPY options in {words}")
        *sources, dest = words
        target = self.cwd / self.path(dest)  # an absolute image path stays under the root
        if not target.resolve().is_relative_to(self.root.resolve()):
            raise CheckFailed(f"COPY to {dest} would write outside the scratch root")
        if dest.endswith("/") or len(sources) > 1:
            target.mkdir(parents=True, exist_ok=True)
        for source in sources:
            origin = self.context / source
            if origin.is_dir():
                shutil.copytree(origin, target, dirs_exist_ok=True)
            else:
                shutil.copy2(origin, target)


def project_version() -> str:
    """``project.version`` from pyproject.toml: the tag the derived recipe builds on."""
    with (REPO / "pyproject.toml").open("rb") as f:
        return str(tomllib.load(f)["project"]["version"])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(what: str, check: Callable[[], bool], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise CheckFailed(f"timed out after {timeout_s:.0f} s waiting for {what}")


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


def read_line_with(proc: subprocess.Popen[str], prefix: str, timeout_s: float = 30.0) -> str:
    """The first stdout line of ``proc`` starting with ``prefix`` (other lines are skipped).

    A daemon thread reads, so a silent child fails the check instead of hanging CI.
    """
    assert proc.stdout is not None
    stdout = proc.stdout
    lines: queue.Queue[str] = queue.Queue()

    def read_next() -> None:
        threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()

    read_next()
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            break
        if not line:
            raise CheckFailed(f"{proc.args!r} exited before printing {prefix!r}")
        if line.startswith(prefix):
            return line[len(prefix) :].strip()
        read_next()
    raise CheckFailed(f"{proc.args!r} did not print {prefix!r} in {timeout_s:.0f} s")


def serve_a_call(replay: Replay, runtime: list[tuple[str, str]]) -> None:
    """The image's command against the emulators: health, readiness, a call, metrics, drain."""
    entry = next((json.loads(a) for w, a in runtime if w == "ENTRYPOINT"), None)
    if not entry:
        raise CheckFailed("the runtime stage has no exec-form ENTRYPOINT")
    image_python = replay.path("/opt/callbridge/bin/python")
    leaked = subprocess.run(
        [image_python, "-c", "import emulators"], cwd=replay.root, capture_output=True
    )
    if leaked.returncode == 0:
        raise CheckFailed("the image environment can import emulators: it must hold only the app")
    dev_python = sys.executable
    gemini = subprocess.Popen(
        [dev_python, "-m", "callbridge.emulators.gemini_live", "--port", str(free_port())],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    telco_port, http_port = free_port(), free_port()
    telco = subprocess.Popen(
        [
            dev_python, "-m", "callbridge.emulators.telcoflow", "--port", str(telco_port),
            "--api-key", API_KEY, "--connector", CONNECTOR, "--calls", "1",
            "--pause", "2", "--wait-agent", "1", "--hold", "1",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )  # fmt: skip
    bridge: subprocess.Popen[str] | None = None
    try:
        base_url = read_line_with(gemini, "base_url ")
        ca_file = read_line_with(gemini, "ca_file ")
        config = replay.root / "etc" / "callbridge" / "tenant.toml"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(
            f'tenant = "image-check"\n[telcoflow]\nbase_url = "ws://127.0.0.1:{telco_port}"\n'
            f'[model]\nbase_url = "{base_url}"\nca_file = "{ca_file}"\n'
            f'[service]\nhttp_host = "127.0.0.1"\nhttp_port = {http_port}\n'
            f"admin_port = {free_port()}\n"
            f'records_url = "sqlite+aiosqlite:///{replay.root}/records.sqlite"\n'
        )
        command = [*entry, *next((json.loads(a) for w, a in runtime if w == "CMD"), [])]
        command = [replay.path(word) for word in command]
        env = {
            **replay.env,
            "TELCOFLOW_API_KEY": API_KEY,
            "TELCOFLOW_CONNECTOR_UUID": CONNECTOR,
            "GEMINI_API_KEY": "image-check",
        }
        workdir = Path(replay.path("/var/lib/callbridge"))
        workdir.mkdir(parents=True, exist_ok=True)
        print(f"+ {shlex.join(command)}", flush=True)
        bridge = subprocess.Popen(command, cwd=workdir, env=env, text=True)
        base = f"http://127.0.0.1:{http_port}"
        wait_for("/healthz 200", lambda: http_status(base + "/healthz") == 200)
        wait_for("/readyz 200 (Telcoflow connected)", lambda: http_status(base + "/readyz") == 200)
        try:
            out, _ = telco.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            raise CheckFailed("the emulated call did not end within 90 s") from None
        calls = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        if len(calls) != 1:
            raise CheckFailed(f"expected one call summary from the emulator, got: {out[-2000:]}")
        print(f"call: {calls[0]}", flush=True)
        with urllib.request.urlopen(base + "/metrics", timeout=5) as reply:
            metrics = reply.read().decode()
        if not re.search(r"^callbridge_calls_total\{[^}]*\} [1-9]", metrics, re.MULTILINE):
            raise CheckFailed("/metrics does not count the call (callbridge_calls_total)")
        bridge.send_signal(signal.SIGTERM)
        try:
            code = bridge.wait(timeout=60)
        except subprocess.TimeoutExpired:
            raise CheckFailed("SIGTERM: the image's command did not exit within 60 s") from None
        if code != 0:
            raise CheckFailed(f"SIGTERM: the image's command exited {code}, not 0")
    finally:
        for proc in (bridge, telco, gemini):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()


def serve_a_derived_call(replay: Replay, runtime: list[tuple[str, str]]) -> None:
    """The derived image's command, its own tenant file, against ``callbridge emulators``."""
    entry = next((json.loads(a) for w, a in runtime if w == "ENTRYPOINT"), None)
    if not entry:
        raise CheckFailed("the runtime stage has no exec-form ENTRYPOINT")
    config = Path(replay.path("/etc/callbridge/tenant.toml"))
    if not config.is_file():
        raise CheckFailed("the derived image has no /etc/callbridge/tenant.toml")
    scenario, folder = replay.root / "scenario.toml", replay.root / "emulators"
    scenario.write_text(DERIVED_SCENARIO)
    emulators = subprocess.Popen(
        [
            sys.executable, "-m", "callbridge.service.cli", "emulators", "--dir", str(folder),
            "--telcoflow-port", "0", "--gemini-port", "0", "--scenario", str(scenario),
            "--calls", "1", "--exit-after-calls",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )  # fmt: skip
    bridge: subprocess.Popen[str] | None = None
    try:
        read_line_with(emulators, "  callbridge serve --config ")
        written = tomllib.loads((folder / "tenant.toml").read_text())
        secrets = dict(
            line.split("=", 1) for line in (folder / "env").read_text().splitlines() if line
        )
        http_port = free_port()
        env = {
            **replay.env,
            **secrets,
            "TELCOFLOW_BASE_URL": written["telcoflow"]["base_url"],
            "CALLBRIDGE_MODEL__BASE_URL": written["model"]["base_url"],
            "CALLBRIDGE_MODEL__CA_FILE": written["model"]["ca_file"],
            "CALLBRIDGE_SERVICE__HTTP_HOST": "127.0.0.1",
            "CALLBRIDGE_SERVICE__HTTP_PORT": str(http_port),
            "CALLBRIDGE_SERVICE__RECORDS_URL": f"sqlite+aiosqlite:///{replay.root}/derived.sqlite",
        }
        command = [*entry, *next((json.loads(a) for w, a in runtime if w == "CMD"), [])]
        command = [replay.path(word) for word in command]
        workdir = Path(replay.path("/var/lib/callbridge"))
        workdir.mkdir(parents=True, exist_ok=True)
        print(f"+ {shlex.join(command)}  (the derived image)", flush=True)
        bridge = subprocess.Popen(command, cwd=workdir, env=env, text=True)
        base = f"http://127.0.0.1:{http_port}"
        wait_for("/readyz 200 (Telcoflow connected)", lambda: http_status(base + "/readyz") == 200)
        try:
            out, _ = emulators.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            raise CheckFailed("the derived image's call did not end within 90 s") from None
        print(out.strip(), flush=True)
        if emulators.returncode != 0 or "call 1: ended" not in out:
            raise CheckFailed(f"the derived image did not answer the call: {out[-2000:]}")
        bridge.send_signal(signal.SIGTERM)
        try:
            code = bridge.wait(timeout=60)
        except subprocess.TimeoutExpired:
            raise CheckFailed("SIGTERM: the derived image did not exit within 60 s") from None
        if code != 0:
            raise CheckFailed(f"SIGTERM: the derived image exited {code}, not 0")
        requests = workdir / "callbacks.jsonl"
        if not requests.is_file() or "from the image check" not in requests.read_text():
            raise CheckFailed(f"the agent's tool {DERIVED_TOOL} did not run in the derived image")
        print(f"derived image: the agent's tool ran: {requests.read_text().strip()}", flush=True)
    finally:
        for proc in (bridge, emulators):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    parser.add_argument(
        "--python",
        default=shutil.which("python3.11") or getattr(sys, "_base_executable", sys.executable),
        help="the interpreter standing in for the image's python (3.11)",
    )
    args = parser.parse_args()
    builder, runtime = stages(instructions(REPO / "Dockerfile"))
    root = Path(tempfile.mkdtemp(prefix="callbridge-image-"))
    replay = Replay(root, args.python)
    started = time.monotonic()
    try:
        for word, rest in builder:
            replay.step(word, rest)
        for word, rest in runtime:
            replay.step(word, rest, runtime=True)
        print(f"image environment built in {time.monotonic() - started:.0f} s", flush=True)
        serve_a_call(replay, runtime)
        derived = instructions(DERIVED / "Dockerfile")
        base = f"callbridge:{project_version()}"
        if [w for w, _ in derived].count("FROM") != 1 or derived[0] != ("FROM", base):
            raise CheckFailed(f"the derived-image recipe must be one stage FROM {base}")
        replay.context = DERIVED
        for word, rest in derived:
            replay.step(word, rest)
        print(f"derived image built in {time.monotonic() - started:.0f} s", flush=True)
        serve_a_derived_call(replay, runtime)
    except CheckFailed as exc:
        print(f"image check FAILED: {exc} (scratch: {root})", file=sys.stderr)
        return 1
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print(f"image check passed in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
