"""A local OAuth 2.0 token endpoint, so Vertex AI's credential flow runs unmodified offline.

google-auth's service-account credentials post a signed JWT grant
(``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer``) to the key file's ``token_uri``
and read back ``access_token`` / ``expires_in``. :meth:`TokenEndpoint.service_account_key`
writes a freshly generated key file whose ``token_uri`` points here; the endpoint checks the
grant the way Google's does (known key id, RS256 signature, issuer, audience, expiry, scope)
and issues bearer tokens that the Vertex side of the Live emulator accepts until they expire.

It runs on its own thread (``http.server``), like a remote endpoint would: google-genai
refreshes credentials with a blocking call on the event loop inside ``live.connect``, which
would deadlock against a server sharing that loop (and stalls a bridge's loop in production,
which is why callbridge refreshes in a worker thread first).

Assumptions (not observable offline): error bodies follow RFC 6749 (``invalid_grant``) as
Google's do; the endpoint is plain HTTP on 127.0.0.1 (google-auth does not insist on https).
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

__all__ = ["TokenEndpoint"]

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
MAX_REQUEST_BYTES = 64 * 1024


def _b64url(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


@dataclass
class _Issued:
    client_email: str
    expires_at: float


@dataclass
class TokenEndpoint:
    """Serves ``POST /token`` on 127.0.0.1; ``token_ttl_s`` is each token's ``expires_in``."""

    token_ttl_s: int = 3600
    host: str = "127.0.0.1"
    requests: list[dict[str, Any]] = field(default_factory=list)
    """Every token request: ``{"client_email", "scope", "ok", "error"}`` (no secrets)."""
    _keys: dict[str, tuple[rsa.RSAPublicKey, str]] = field(default_factory=dict)
    _tokens: dict[str, _Issued] = field(default_factory=dict)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def token_uri(self) -> str:
        if self._server is None:
            raise RuntimeError("token endpoint not started")
        return f"http://{self.host}:{self._server.server_address[1]}/token"

    async def start(self) -> None:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = min(int(self.headers.get("content-length") or 0), MAX_REQUEST_BYTES)
                body = self.rfile.read(length).decode("utf-8") if length else ""
                if self.path.split("?")[0] != "/token":
                    status, reply = 404, {"error": "not_found"}
                else:
                    status, reply = endpoint._handle(body)
                payload = json.dumps(reply).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                return  # no request lines on stderr (they would carry nothing secret anyway)

        self._server = ThreadingHTTPServer((self.host, 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="oauth-token-endpoint", daemon=True
        )
        self._thread.start()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    # ------------------------------------------------------------------ keys and tokens

    def service_account_key(self, path: Path, project: str, name: str = "callbridge") -> Path:
        """Write a service-account key file (JSON) whose ``token_uri`` is this endpoint."""
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        key_id = secrets.token_hex(20)
        email = f"{name}@{project}.iam.gserviceaccount.com"
        self._keys[key_id] = (private.public_key(), email)
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii")
        key = {
            "type": "service_account",
            "project_id": project,
            "private_key_id": key_id,
            "private_key": pem,
            "client_email": email,
            "client_id": str(secrets.randbelow(10**20)),
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": self.token_uri,
            "universe_domain": "googleapis.com",
        }
        path.write_text(json.dumps(key, indent=2), encoding="utf-8")
        path.chmod(0o600)
        return path

    def token_valid(self, token: str) -> bool:
        """True for a bearer token this endpoint issued and that has not expired."""
        issued = self._tokens.get(token)
        return issued is not None and issued.expires_at > time.time()

    @property
    def tokens_issued(self) -> int:
        return sum(1 for r in self.requests if r["ok"])

    def _grant(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if form.get("grant_type") != JWT_BEARER:
            return 400, {"error": "unsupported_grant_type"}
        try:
            head_b64, body_b64, sig_b64 = form.get("assertion", "").split(".")
            header = json.loads(_b64url(head_b64))
            claims = json.loads(_b64url(body_b64))
        except (ValueError, json.JSONDecodeError):
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT."}
        known = self._keys.get(str(header.get("kid")))
        if header.get("alg") != "RS256" or known is None:
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
        public, email = known
        try:
            public.verify(
                _b64url(sig_b64),
                f"{head_b64}.{body_b64}".encode("ascii"),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except InvalidSignature:
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
        now = time.time()
        problems = []
        if claims.get("iss") != email:
            problems.append("iss")
        if claims.get("aud") not in (self.token_uri, GOOGLE_TOKEN_AUDIENCE):
            problems.append("aud")
        if not (claims.get("iat", 0) - 300 <= now <= claims.get("exp", 0) + 300):
            problems.append("exp")
        if CLOUD_PLATFORM not in str(claims.get("scope", "")).split():
            problems.append("scope")
        if problems:
            return 400, {
                "error": "invalid_grant",
                "error_description": f"Invalid JWT: bad {', '.join(problems)} claim.",
            }
        token = "ya29.emu-" + secrets.token_urlsafe(24)
        self._tokens[token] = _Issued(email, now + self.token_ttl_s)
        return 200, {"access_token": token, "expires_in": self.token_ttl_s, "token_type": "Bearer"}

    def _handle(self, body: str) -> tuple[int, dict[str, Any]]:
        form = {k: v[0] for k, v in parse_qs(body).items()}
        with self._lock:
            status, reply = self._grant(form)
            self.requests.append(
                {
                    "ok": status == 200,
                    "error": reply.get("error"),
                    "scope": _scope_of(form.get("assertion", "")),
                }
            )
        return status, reply


def _scope_of(assertion: str) -> str:
    try:
        return str(json.loads(_b64url(assertion.split(".")[1])).get("scope", ""))
    except (ValueError, IndexError, json.JSONDecodeError):
        return ""
