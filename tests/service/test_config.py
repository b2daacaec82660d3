"""Configuration errors as an operator sees them: every problem at once, each naming its field.

``check-config`` runs in-process (its ``main``) for the detailed output and once as a real
``callbridge`` process for the exit code; ``serve`` with a bad file is run as a process too,
because "no traceback" is a property of the process's output.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from callbridge.bridge.config import ConfigInvalid, config_problems, load_config
from callbridge.bridge.errors import ConfigError
from callbridge.service.config_cli import main as check_config
from tests.service.helpers import REPO

GOOD_ENV = {
    "TELCOFLOW_API_KEY": "k",
    "TELCOFLOW_CONNECTOR_UUID": "c",
    "GEMINI_API_KEY": "g",
}

BAD_TOML = """
tenant = "bad tenant!"

[telcoflow]
api_key = "pasted-by-mistake"

[model]
ca_file = "/nonexistent/ca.pem"
compression_trigger_tokens = 1000
compression_target_tokens = 2000

[limits]
max_concurrent_calls = 0
drain_grace_s = -1
admission_wait_s = "soon"

[service]
http_port = 70000
"""

EXPECTED_FIELDS = [
    "telcoflow.api_key",  # an inline secret
    "tenant",
    "model",  # target >= trigger
    "limits.max_concurrent_calls",
    "limits.admission_wait_s",
    "limits.drain_grace_s",
    "service.http_port",
    "model.api_key",  # GEMINI_API_KEY missing
    "model.ca_file",  # file missing
]


def write(tmp_path: Path, text: str, name: str = "tenant.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_every_problem_is_reported_at_once_each_naming_its_field(tmp_path: Path) -> None:
    path = write(tmp_path, BAD_TOML)
    with pytest.raises(ConfigInvalid) as caught:
        load_config(path, env={"TELCOFLOW_CONNECTOR_UUID": "c"}, service=True)
    problems = caught.value.problems
    assert [p.split(":", 1)[0] for p in problems] == EXPECTED_FIELDS
    assert "TELCOFLOW_API_KEY" in problems[0]
    assert all("\n" not in p for p in problems)


def test_service_checks_are_off_for_library_use(tmp_path: Path) -> None:
    path = write(tmp_path, 'tenant = "t"\n[model]\nca_file = "/nonexistent/ca.pem"\n')
    env = {"TELCOFLOW_API_KEY": "k", "TELCOFLOW_CONNECTOR_UUID": "c"}
    assert load_config(path, env=env).tenant == "t"
    with pytest.raises(ConfigError) as caught:
        load_config(path, env=env, service=True)
    assert [p.split(":")[0] for p in config_problems(caught.value)] == [
        "model.api_key",
        "model.ca_file",
    ]


def test_short_admin_token_and_bad_endpoint_are_named(tmp_path: Path) -> None:
    path = write(tmp_path, 'tenant = "t"\n')
    env = {**GOOD_ENV, "CALLBRIDGE_ADMIN_TOKEN": "short", "TELCOFLOW_BASE_URL": "http://x"}
    with pytest.raises(ConfigInvalid) as caught:
        load_config(path, env=env, service=True)
    assert [p.split(":")[0] for p in caught.value.problems] == [
        "telcoflow.base_url",
        "service.admin_token",
    ]


def test_check_config_prints_one_line_per_problem_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TELCOFLOW_CONNECTOR_UUID", "c")
    path = write(tmp_path, BAD_TOML)
    assert check_config([str(path)]) == 2
    out = capsys.readouterr()
    lines = out.err.splitlines()
    assert [line.removeprefix(f"{path}: ").split(":")[0] for line in lines] == EXPECTED_FIELDS
    assert out.out == ""


def test_check_config_accepts_a_good_file_and_never_prints_secrets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {**GOOD_ENV, "CALLBRIDGE_ADMIN_TOKEN": "s3cret-admin-token-xyz"}.items():
        monkeypatch.setenv(name, value)
    path = write(tmp_path, 'tenant = "acme"\n[limits]\nmax_concurrent_calls = 12\n')
    assert check_config([str(path)]) == 0
    out = capsys.readouterr().out
    assert "OK: tenant acme" in out and "up to 12 calls" in out and "admin API on" in out
    assert "s3cret" not in out


def test_check_config_without_secrets_checks_the_file_alone(
    capsys: pytest.CaptureFixture[str],
) -> None:
    example = REPO / "examples" / "tenants" / "example.toml"
    assert check_config([str(example)]) == 2  # the environment has no secrets here
    assert "TELCOFLOW_API_KEY" in capsys.readouterr().err
    assert check_config(["--without-secrets", str(example)]) == 0


def test_check_config_missing_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert check_config([str(tmp_path / "nope.toml")]) == 2
    assert "config file not found" in capsys.readouterr().err


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "callbridge.service.cli", *args],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_commands_as_processes_exit_2_with_one_line_per_problem(tmp_path: Path) -> None:
    bad = write(tmp_path, BAD_TOML)
    checked = _run("check-config", str(bad), env={"TELCOFLOW_CONNECTOR_UUID": "c"})
    assert checked.returncode == 2
    assert len(checked.stderr.splitlines()) == len(EXPECTED_FIELDS)

    served = _run("serve", "--config", str(bad), env={"TELCOFLOW_CONNECTOR_UUID": "c"})
    assert served.returncode == 2
    lines = served.stderr.splitlines()
    assert [line.split(": ")[2] for line in lines] == EXPECTED_FIELDS
    assert all(line.startswith("callbridge serve: config error: ") for line in lines)
    assert "Traceback" not in served.stderr

    # A well-formed file without the environment's secrets: named, not a stack trace.
    good = write(tmp_path, 'tenant = "acme"\n', name="good.toml")
    unsecret = _run("serve", "--config", str(good), env={})
    assert unsecret.returncode == 2
    assert "TELCOFLOW_API_KEY" in unsecret.stderr and "GEMINI_API_KEY" in unsecret.stderr
    assert "Traceback" not in unsecret.stderr
