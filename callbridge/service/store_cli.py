"""``callbridge calls list|show|erase``: read the call records a bridge process wrote, or
erase one caller's.

``list`` and ``show`` are read-only. ``erase --caller NUMBER`` deletes that caller's calls,
their entries (transcripts included) and their recordings (the files the records link to,
and any file named after one of the calls in ``--recordings``), then says what it removed.
No command creates a database, so a mistyped SQLite path is reported instead of
silently producing an empty file. The URL comes from ``--url``, else ``CALLBRIDGE_RECORDS_URL``,
else the service default.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from callbridge.bridge.config import ServiceSettings
from callbridge.bridge.record import RecordEntry, mask_number
from callbridge.service.retention import erase_caller
from callbridge.service.store import RecordStore, StoredCall

URL_ENV = "CALLBRIDGE_RECORDS_URL"
RECORDINGS_ENV = "CALLBRIDGE_RECORDINGS_DIR"


class CliError(Exception):
    """A problem the user can fix; printed without a traceback, exit status 1."""


def default_url(env: dict[str, str] | None = None) -> str:
    env = dict(os.environ) if env is None else env
    default: str = ServiceSettings.model_fields["records_url"].default
    return env.get(URL_ENV) or default


def _shown(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _check_url(url: str) -> None:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise CliError(f"not a database URL: {url!r}") from None
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or not Path(database).exists():
            raise CliError(
                f"no records database at {database or '(memory)'!s}; "
                f"pass --url or set {URL_ENV} (e.g. sqlite+aiosqlite:///path/to/records.sqlite)"
            )


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _print_list(found: Sequence[StoredCall], out: TextIO) -> None:
    if not found:
        print("no calls recorded", file=out)
        return
    rows = [("CALL ID", "STARTED (UTC)", "DURATION", "OUTCOME", "CALLER")]
    rows += [
        (
            c.call_id,
            _when(c.started_at),
            _duration(c.duration),
            c.outcome,
            mask_number(c.caller),  # always masked here, even if stored in full
        )
        for c in found
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print("  ".join(cells).rstrip(), file=out)


_LEAD_KEY = {"timeline": "event", "state": "state", "tool": "name", "usage": ""}
"""The data key whose value starts an entry's line, per kind."""


def _entry_text(entry: RecordEntry) -> str:
    data = entry.data
    if entry.kind == "transcript":
        return f"{data.get('speaker', '?')}: {data.get('text', '')}"
    if entry.kind == "warning":
        return f"{data.get('code', '?')}: {data.get('description', '')}"
    if entry.kind == "command":
        rest = {k: v for k, v in data.items() if k not in ("command", "ok", "error_code")}
        status = "ok" if data.get("ok") else f"failed ({data.get('error_code')})"
        return " ".join([str(data.get("command", "?")), status, *_pairs(rest)])
    lead = _LEAD_KEY.get(entry.kind, "")
    if lead in data:
        rest = {k: v for k, v in data.items() if k != lead}
        return " ".join([str(data[lead]), *_pairs(rest)])
    return " ".join(_pairs(data))


def _pairs(data: dict[str, Any]) -> list[str]:
    """``key=value``; plain words stay bare, anything else is shown as JSON."""
    return [f"{key}={_value(value)}" for key, value in data.items()]


def _value(value: Any) -> str:
    if isinstance(value, str) and value and not any(c.isspace() or c in '"=' for c in value):
        return value
    return json.dumps(value, ensure_ascii=False)


def _print_call(call: StoredCall, out: TextIO) -> None:
    header = [
        ("call", call.call_id),
        ("tenant", call.tenant),
        ("caller", call.caller),
        ("callee", call.callee),
        ("session", call.session_id or "-"),
        ("started", _when(call.started_at) + " UTC"),
        ("answered", _when(call.answered_at)),
        ("ended", _when(call.ended_at)),
        ("duration", _duration(call.duration)),
        ("outcome", call.outcome),
        ("direction", call.direction),
        ("model", call.model or "-"),
        ("usage", " ".join(_pairs(call.usage)) or "-"),
        ("cost", "-" if call.cost_usd is None else f"${call.cost_usd:.4f}"),
    ]
    for key, value in header:
        print(f"{key + ':':<10}{value}", file=out)
    print(f"\ntimeline ({len(call.entries)} entries):", file=out)
    for entry in call.entries:
        print(f"  {entry.t:>9.3f}s  {entry.kind:<10}  {_entry_text(entry)}", file=out)


def _as_json(call: StoredCall) -> str:
    body = dataclasses.asdict(call)
    body["duration"] = call.duration
    return json.dumps(body, ensure_ascii=False, indent=2)


def _file_of(uri: str) -> Path | None:
    from urllib.parse import urlparse
    from urllib.request import url2pathname

    parsed = urlparse(uri)
    return Path(url2pathname(parsed.path)) if parsed.scheme == "file" else None


def _remove_recordings(
    uris: Sequence[str], call_ids: Sequence[str], directory: Path | None
) -> tuple[list[Path], list[str]]:
    """Delete linked recordings and any file named after an erased call; (removed, not found)."""
    candidates: set[Path] = set()
    missing: list[str] = []
    for uri in uris:
        path = _file_of(uri)
        if path is None:
            missing.append(f"{uri} (not a local file: delete it where it is stored)")
        elif path.exists():
            candidates.add(path)
    if directory is not None and directory.is_dir():
        names = set(call_ids)
        for path in directory.rglob("*"):
            stem = path.name.split(".", 1)[0]
            if path.is_file() and stem in names:
                candidates.add(path)
    for path in sorted(candidates):
        path.unlink(missing_ok=True)
    return sorted(candidates), missing


async def _erase(args: argparse.Namespace, out: TextIO) -> int:
    shown = mask_number("".join(c for c in args.caller if c.isdigit() or c == "+"))
    async with RecordStore(args.url) as store:
        erased = await erase_caller(store, args.caller)
    directory = Path(args.recordings) if args.recordings else None
    removed, missing = await asyncio.to_thread(
        _remove_recordings, erased.recording_uris, erased.call_ids, directory
    )
    if not erased.call_ids:
        print(f"no calls of caller {shown} in {_shown(args.url)}", file=out)
        return 0
    print(
        f"erased caller {shown}: {len(erased.call_ids)} calls, {erased.entries} record entries "
        f"({erased.transcript_lines} transcript lines), {len(removed)} recording files",
        file=out,
    )
    for call_id in erased.call_ids:
        print(f"  call {call_id}", file=out)
    for path in removed:
        print(f"  deleted {path}", file=out)
    for uri in missing:
        print(f"  NOT deleted: {uri}", file=out)
    if directory is None:
        print(f"  (no --recordings directory given; set {RECORDINGS_ENV} to search one)", file=out)
    return 0


async def _run(args: argparse.Namespace, out: TextIO) -> int:
    _check_url(args.url)
    if args.action == "erase":
        return await _erase(args, out)
    async with RecordStore(args.url) as store:
        if args.action == "list":
            _print_list(await store.list_calls(args.limit, tenant=args.tenant), out)
            return 0
        call = await store.get_call(args.call_id)
    if call is None:
        raise CliError(f"no call {args.call_id!r} in {_shown(args.url)}")
    if args.json:
        print(_as_json(call), file=out)
    else:
        _print_call(call, out)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="callbridge calls",
        description="List, show or erase the call records a bridge wrote.",
    )
    url_help = f"records database (default: ${URL_ENV} or the service default)"
    actions = parser.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="the most recent calls")
    listing.add_argument("--url", default=default_url(), help=url_help)
    listing.add_argument("--limit", type=int, default=20, help="how many calls (default 20)")
    listing.add_argument("--tenant", default=None, help="only this tenant's calls")
    show = actions.add_parser("show", help="one call: header and timeline")
    show.add_argument("call_id")
    show.add_argument("--url", default=default_url(), help=url_help)
    show.add_argument("--json", action="store_true", help="print the call as JSON")
    erase = actions.add_parser(
        "erase", help="delete one caller's records, transcripts and recordings"
    )
    erase.add_argument("--caller", required=True, help="the caller's number, e.g. +15551234567")
    erase.add_argument("--url", default=default_url(), help=url_help)
    erase.add_argument(
        "--recordings",
        default=os.environ.get(RECORDINGS_ENV),
        help=f"recordings directory to search too (default ${RECORDINGS_ENV})",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(sys.argv[1:] if argv is None else list(argv))
    if args.action == "list" and args.limit < 1:
        print("callbridge calls: --limit must be at least 1", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_run(args, sys.stdout))
    except CliError as error:
        print(f"callbridge calls: {error}", file=sys.stderr)
        return 1
    except (SQLAlchemyError, OSError) as error:
        print(f"callbridge calls: cannot read {_shown(args.url)}: {error}", file=sys.stderr)
        return 1
