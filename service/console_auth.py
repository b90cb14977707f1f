"""Who may use the console, and its session and CSRF tokens (no Flask here).

- **Cloud** (``INTERNAL_AUTH=cloud_run_iam``): the operator runs ``gcloud run services
  proxy``, which sends their Google ID token in ``Authorization`` on every request. gcloud
  asks that token for its own OAuth client (``GCLOUD_CLIENT_ID``: the SDK's
  ``CLOUDSDK_CLIENT_ID``, which ``run services proxy`` passes to cloud-run-proxy as
  ``-token``), so its audience is that client id, not the service's URL; the proxy sends
  no ``X-Serverless-Authorization``, so Cloud Run passes the token on with its signature
  removed after checking it. The console takes such a token on Cloud Run's word and checks
  every claim (issuer, audience, expiry, verified email) and the email against
  ``CONSOLE_OPERATORS``; an intact token is verified with Google's certificates as well.
- **Locally** (``INTERNAL_AUTH=api_key``): a sign-in form takes a ``SERVICE_API_KEYS`` key.

Either way the browser holds a session cookie, signed with a key derived from the
configured secrets (itsdangerous), HttpOnly, SameSite=Strict, Secure over https, valid
``SESSION_TTL``. It carries the CSRF token every form POST must send back; in the cloud it
is bound to the operator's email, which each request proves again.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer

from service.config import Settings
from service.web.id_tokens import GoogleCerts, Verifier

# gcloud's OAuth client: the audience of the ID tokens gcloud (and so its proxy) sends.
GCLOUD_CLIENT_ID = "32555940559.apps.googleusercontent.com"
SESSION_TTL = 30 * 60
SESSION_COOKIE = "console_session"
_LABEL = b"gateway console session v1"


@dataclass(frozen=True)
class Session:
    who: str | None  # None: not signed in yet (the sign-in form's CSRF token only)
    csrf: str


def session_key(settings: Settings) -> bytes:
    """A key only this deployment has: derived from its API keys and component secrets."""
    material = sorted(settings.service_api_keys) + sorted(
        c.secret for c in settings.components.values()
    )
    return hmac.new(_LABEL, "\n".join(material).encode(), hashlib.sha256).digest()


class SessionCodec:
    def __init__(self, key: bytes, ttl: float = SESSION_TTL) -> None:
        self.serializer = URLSafeTimedSerializer(key, salt="console-session")
        self.ttl = ttl

    def dump(self, session: Session) -> str:
        return self.serializer.dumps({"who": session.who, "csrf": session.csrf})

    def load(self, cookie: str | None) -> Session | None:
        """The session in a cookie signed here within ``ttl``; None otherwise."""
        if not cookie:
            return None
        try:
            data: Any = self.serializer.loads(cookie, max_age=int(self.ttl))
        except BadSignature:  # expired ones too (SignatureExpired is one)
            return None
        if not isinstance(data, dict):
            return None
        who, csrf = data.get("who"), data.get("csrf")
        if not isinstance(csrf, str) or not (who is None or isinstance(who, str)):
            return None
        return Session(who, csrf)


def new_session(who: str | None) -> Session:
    return Session(who, secrets.token_urlsafe(32))


def csrf_matches(session: Session | None, offered: str | None) -> bool:
    if session is None or not offered:
        return False
    return hmac.compare_digest(session.csrf.encode(), offered.encode())


def api_key_operator(settings: Settings, offered: str) -> str | None:
    """The operator's name for an accepted key (a fingerprint, never the key); else None."""
    given = offered.strip().encode()
    for key in settings.service_api_keys:
        if given and hmac.compare_digest(given, key.encode()):
            return f"API 密钥 #{hashlib.sha256(key.encode()).hexdigest()[:8]}"
    return None


def operator_verifier(settings: Settings) -> Verifier:
    """The console's ID-token verifier: the service's audiences and gcloud's client id,
    and the emails in CONSOLE_OPERATORS."""
    audiences = (*settings.internal_audiences, GCLOUD_CLIENT_ID)
    return Verifier(audiences, settings.console_operators, GoogleCerts(settings.id_token_certs_url))
