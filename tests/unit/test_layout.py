"""The import direction is enforced by lint: the core imports no SDK and no service module.

Each probe is linted as if it lived in the package (ruff resolves the package's own
``ruff.toml`` from ``--stdin-filename``), so nothing is written into the source tree.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUFF = Path(sys.executable).with_name("ruff")


def _banned(package: str, source: str) -> bool:
    done = subprocess.run(
        [str(RUFF), "check", "--select", "TID251", "--stdin-filename", f"{package}/probe.py", "-"],
        input=source + "\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    return "TID251" in done.stdout


@pytest.mark.parametrize(
    "source",
    [
        "import telcoflow",
        "from google.genai import types",
        "from google.adk.agents import Agent",
        "import websockets.asyncio.client",
        "import sqlalchemy",
        "from prometheus_client import Counter",
        "from callbridge.service import store",
        "from callbridge.service.http import build_app",
        "from callbridge.adapters.telcoflow.port import TelcoflowCall",
        "import callbridge.emulators.demo",
    ],
)
def test_the_core_may_not_import_an_sdk_or_the_service(source: str) -> None:
    assert _banned("callbridge/bridge", source)


@pytest.mark.parametrize(
    "source", ["from callbridge.service import serve", "import callbridge.bench.run"]
)
def test_adapters_may_not_import_the_service(source: str) -> None:
    assert _banned("callbridge/adapters", source)


@pytest.mark.parametrize(
    ("package", "source"),
    [
        ("callbridge/bridge", "from callbridge.bridge.ports import CallPort"),
        ("callbridge/bridge", "import numpy"),
        ("callbridge/adapters", "import telcoflow"),
        ("callbridge/adapters", "from callbridge.bridge.ports import CallPort"),
        ("callbridge/service", "from callbridge.adapters.telcoflow import port"),
    ],
)
def test_the_allowed_direction_passes(package: str, source: str) -> None:
    assert not _banned(package, source)
