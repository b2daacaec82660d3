"""Fixtures for the record store: a SQLite file per test and a real PostgreSQL cluster."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from callbridge.bridge.record import CallRecord
from callbridge.bridge.warnings import BridgeWarning, WarningCode
from tests.store.pg import PgCluster, find_bindir

REQUIRE_ENV = "CALLBRIDGE_REQUIRE_POSTGRES"


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    bindir = find_bindir()
    if bindir is None:
        reason = (
            "PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin/initdb, pg_ctl); "
            "run scripts/install-test-services.sh"
        )
        if os.environ.get(REQUIRE_ENV) == "1":  # CI: a missing server is a failure
            pytest.fail(f"{reason} ({REQUIRE_ENV}=1)")
        pytest.skip(reason)
    cluster = PgCluster(bindir)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_url(pg_cluster: PgCluster) -> str:
    """A fresh database in the shared cluster, so tests never see each other's calls."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    subprocess.run(
        [
            str(pg_cluster.bindir / "createdb"),
            "-h",
            "127.0.0.1",
            "-p",
            str(pg_cluster.port),
            "-U",
            "callbridge",
            name,
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return pg_cluster.url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'records.sqlite'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest) -> str:
    url: str = request.getfixturevalue(f"{request.param.replace('postgresql', 'pg')}_url")
    return url


def full_record(call_id: str = "call-1", tenant: str = "acme") -> CallRecord:
    """A record holding every entry kind, for round trips."""
    record = CallRecord(call_id, tenant, "+441632960123", "+441632960999", session_id="s-1")
    return record


def fill(record: CallRecord) -> None:
    """Append one entry of every kind (the record's listeners see each)."""
    record.note("call_started", rate=16000)
    record.mark_answered()
    record.transcript("caller", "Hello, I need help with my bill.")
    record.transcript("agent", "Of course — what's your account number? ünïcödé")
    record.tool("transfer_to_human", "fc-1", "started", args={"reason": "billing"})
    record.command("connect", False, "TIMEOUT", target="+441632960555", ring_s=30)
    record.warning(
        BridgeWarning(
            WarningCode.SLOW_TOOL_CALL, "transfer_to_human ran 6.1 s", record.call_id, record.tenant
        )
    )
    record.add_usage({"input_tokens": 120, "output_tokens": 48})
    record.note("barge_in", dropped_ms=480.5, nested={"a": [1, 2.5, None, True]})
    record.finish("completed")
