"""Console sessions and CSRF tokens: pure functions over the admin token, no server state.

Why stateless: every replica of a tenant shares the admin token, so a session signed with a
key derived from it is checked the same way wherever it lands, with nothing to store or
replicate. The price is that a session cannot be revoked one by one before it expires
(``SESSION_TTL_S``); rotating the admin token revokes them all.

- The session cookie is ``<payload>.<signature>``: base64url JSON ``{"op", "sid", "exp"}``
  signed with HMAC-SHA256. ``op`` is the operator name given at login (the token is shared,
  so the name is *declared*, not proven; the audit also keeps the client address).
- The CSRF token is HMAC(key, "csrf:" + sid): tied to one session, never stored, sent by the
  page in a header or form field and compared in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
from dataclasses import dataclass

COOKIE_NAME = "callbridge_console"
SESSION_TTL_S = 8 * 3600
"""One shift; then the operator logs in again."""

OPERATOR_NAME = re.compile(r"^[\w .@'-]{1,64}$")
"""What an operator may call themselves in the audit trail (letters, digits, ``.@'-``)."""


@dataclass(frozen=True, slots=True)
class Session:
    operator: str
    sid: str
    expires_at: float


def _key(admin_token: str) -> bytes:
    return hmac.new(admin_token.encode(), b"callbridge-console-session-v1", hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def token_matches(admin_token: str, given: str) -> bool:
    return hmac.compare_digest(given.encode(), admin_token.encode())


def new_session(
    admin_token: str, operator: str, *, now: float | None = None
) -> tuple[str, Session]:
    """A signed cookie value for ``operator`` and the session it stands for."""
    session = Session(operator, secrets.token_hex(16), (now or time.time()) + SESSION_TTL_S)
    payload = _b64(
        json.dumps({"op": session.operator, "sid": session.sid, "exp": session.expires_at}).encode()
    )
    signature = _b64(hmac.new(_key(admin_token), payload.encode(), hashlib.sha256).digest())
    return f"{payload}.{signature}", session


def read_session(
    admin_token: str, cookie: str | None, *, now: float | None = None
) -> Session | None:
    """The session a cookie carries, or ``None`` if it is missing, forged or expired."""
    if not cookie or cookie.count(".") != 1:
        return None
    payload, signature = cookie.split(".")
    expected = _b64(hmac.new(_key(admin_token), payload.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(signature.encode(), expected.encode()):
        return None
    try:
        data = json.loads(_unb64(payload))
        session = Session(str(data["op"]), str(data["sid"]), float(data["exp"]))
    except (ValueError, KeyError, TypeError):
        return None
    if session.expires_at <= (now or time.time()):
        return None
    return session


def csrf_token(admin_token: str, session: Session) -> str:
    return _b64(
        hmac.new(_key(admin_token), b"csrf:" + session.sid.encode(), hashlib.sha256).digest()
    )


def csrf_ok(admin_token: str, session: Session, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(
        str(given).encode(), csrf_token(admin_token, session).encode()
    )


def same_origin(origin: str | None, host: str | None, scheme: str) -> bool:
    """A browser's ``Origin`` must be this server; a request without one (curl) passes here
    and is judged by its CSRF token alone."""
    if origin is None:
        return True
    return host is not None and origin in (f"{scheme}://{host}", f"https://{host}")
