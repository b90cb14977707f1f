"""The caller's Google-signed ID token, verified by the internal service itself.

With ``INTERNAL_AUTH=cloud_run_iam`` Cloud Run checks the caller's ID token and its
``roles/run.invoker`` before a request arrives. This module checks again, so that a service
reachable without that check (ingress ``all`` and an IAM mistake, or a copy deployed by
hand) still serves nobody but the listed callers: the token's RS256 signature against
Google's published certificates, its issuer, audience and expiry, then its verified
``email`` against ``INTERNAL_INVOKERS``.

What Cloud Run does with the token (its service-to-service and troubleshooting pages): it
checks the token in ``X-Serverless-Authorization`` if there is one, else the one in
``Authorization``, and passes the checked token on with its signature replaced by
``SIGNATURE_REMOVED_BY_GOOGLE``; with ``X-Serverless-Authorization`` present, it passes
``Authorization`` on as the caller sent it. So a caller sends its token in both headers and
the service verifies the intact copy. Cloud Scheduler can only send its token in
``Authorization``, which arrives without a signature: on ``/tasks/*`` only, such a token is
accepted on Cloud Run's word, with every claim still checked (see ``Verifier.caller``).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import requests
from google.auth import crypt

log = logging.getLogger(__name__)

GOOGLE_ISSUERS = ("https://accounts.google.com", "accounts.google.com")
SERVERLESS_AUTH = "X-Serverless-Authorization"
# The headers a token may come in, in the order Cloud Run itself looks at them.
TOKEN_HEADERS = (SERVERLESS_AUTH, "Authorization")
# What Cloud Run puts in place of the signature of a token it has checked.
SIGNATURE_REMOVED = "SIGNATURE_REMOVED_BY_GOOGLE"
LEEWAY = 30.0  # seconds of clock difference allowed on exp and iat
# Certificates: held for their Cache-Control max-age, within these bounds (seconds).
MIN_CACHE, DEFAULT_CACHE, MAX_CACHE = 60.0, 300.0, 86400.0
REFETCH_INTERVAL = 60.0  # an unknown key id fetches again at most this often
FAILURE_PAUSE = 1.0  # after a failed fetch, requests answer 503 without trying for this long
FETCH_TIMEOUT = 5.0
MAX_AGE = re.compile(r"(?:^|[,\s])max-age=(\d+)", re.IGNORECASE)


class IdTokenRefusal(Exception):
    """Why a request is refused: 401 (no valid token), 403 (a caller not listed) or 503
    (Google's certificates could not be had). The reason never holds the token."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Caller:
    email: str
    # "signature": verified here; "cloud_run": a token Cloud Run checked (tasks only).
    checked_by: str


class GoogleCerts:
    """Google's ID-token certificates (key id to PEM, as ``oauth2/v1/certs`` serves them),
    fetched on first use and again when their max-age runs out, one fetch at a time."""

    def __init__(
        self,
        url: str,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.session = session or requests.Session()
        self.clock = clock
        self._lock = threading.Lock()
        self._verifiers: dict[str, crypt.RSAVerifier] | None = None
        self._expires = 0.0
        self._fetched = 0.0
        self._failed_until = 0.0

    def verifier(self, kid: str) -> crypt.RSAVerifier | None:
        """The verifier of key ``kid``, or None if Google does not publish that key.

        Raises IdTokenRefusal(503) when the certificates are needed and cannot be fetched.
        """
        with self._lock:
            now = self.clock()
            if self._verifiers is None or now >= self._expires:
                self._fetch(now)
            assert self._verifiers is not None
            if kid not in self._verifiers and now - self._fetched >= REFETCH_INTERVAL:
                # Google publishes a new key before signing with it; refetch, rarely.
                try:
                    self._fetch(now)
                except IdTokenRefusal:
                    pass  # the certificates held are still valid
            return self._verifiers.get(kid)

    def _fetch(self, now: float) -> None:
        if now < self._failed_until:
            raise IdTokenRefusal(503, "cannot fetch Google's signing certificates; try again")
        try:
            response = self.session.get(self.url, timeout=FETCH_TIMEOUT)
            response.raise_for_status()
            verifiers = _parse_certs(response.json())
        except (requests.RequestException, ValueError) as exc:
            self._failed_until = now + FAILURE_PAUSE
            log.error(
                "ID token certificates unavailable",
                extra={"certs_url": self.url, "error_type": type(exc).__name__},
            )
            raise IdTokenRefusal(
                503, "cannot fetch Google's signing certificates; try again"
            ) from None
        self._verifiers = verifiers
        self._fetched = now
        self._expires = now + _max_age(response.headers.get("Cache-Control", ""))


def _parse_certs(document: Any) -> dict[str, crypt.RSAVerifier]:
    if not isinstance(document, dict) or not document:
        raise ValueError("not a certificate document")
    verifiers = {}
    for kid, pem in document.items():
        if not isinstance(kid, str) or not isinstance(pem, str):
            raise ValueError("not a certificate document")
        # ValueError if it is not a certificate or public key in PEM.
        verifiers[kid] = cast(crypt.RSAVerifier, crypt.RSAVerifier.from_string(pem))  # type: ignore[no-untyped-call]
    return verifiers


def _max_age(cache_control: str) -> float:
    match = MAX_AGE.search(cache_control)
    if match is None:
        return DEFAULT_CACHE
    return min(max(float(match.group(1)), MIN_CACHE), MAX_CACHE)


@dataclass(frozen=True)
class _Token:
    header: dict[str, Any]
    claims: dict[str, Any]
    signed: bytes
    signature: str  # base64url, or SIGNATURE_REMOVED


class Verifier:
    """Who is calling, from the request's headers; IdTokenRefusal if nobody allowed."""

    def __init__(
        self,
        audiences: tuple[str, ...],
        invokers: tuple[str, ...],
        certs: GoogleCerts,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.audiences = audiences
        self.invokers = frozenset(email.lower() for email in invokers)
        self.certs = certs
        self.clock = clock

    def caller(self, header: Callable[[str], str | None], *, cloud_run_checked_ok: bool) -> Caller:
        """The caller of a request with these headers.

        ``header(name)`` is the request's header of that name, or None. The first token
        with its signature (``X-Serverless-Authorization``, then
        ``Authorization``) is verified. A token whose signature Cloud Run removed is
        accepted only if ``cloud_run_checked_ok`` and there is no intact one; its claims are
        checked all the same.
        """
        present = [(name, header(name)) for name in TOKEN_HEADERS]
        tokens = [(name, _bearer(name, value)) for name, value in present if value is not None]
        if not tokens:
            raise IdTokenRefusal(
                401, "missing identity token: send 'Authorization: Bearer <Google ID token>'"
            )
        parsed = [_parse(name, token) for name, token in tokens]
        intact = [token for token in parsed if token.signature != SIGNATURE_REMOVED]
        if intact:
            token = intact[0]
            self._check_claims(token)
            self._check_signature(token)
            return Caller(self._allowed_email(token), "signature")
        if not cloud_run_checked_ok:
            raise IdTokenRefusal(
                401,
                "the identity token arrived without its signature (Cloud Run removes it from "
                "the token it checked); send the same token in both "
                f"'{SERVERLESS_AUTH}: Bearer <token>' and 'Authorization: Bearer <token>'",
            )
        token = parsed[0]
        self._check_claims(token)
        return Caller(self._allowed_email(token), "cloud_run")

    def _check_claims(self, token: _Token) -> None:
        claims, now = token.claims, self.clock()
        if claims.get("iss") not in GOOGLE_ISSUERS:
            raise IdTokenRefusal(401, "the identity token is not issued by Google")
        if claims.get("aud") not in self.audiences:
            expected = " or ".join(self.audiences)
            raise IdTokenRefusal(
                401, f"the identity token is for another audience; ask for one for {expected}"
            )
        exp, iat = _number(claims.get("exp")), _number(claims.get("iat"))
        if exp is None or iat is None:
            raise IdTokenRefusal(401, "the identity token is not a well-formed ID token")
        if now > exp + LEEWAY:
            raise IdTokenRefusal(401, "the identity token has expired")
        if iat > now + LEEWAY:
            raise IdTokenRefusal(401, "the identity token is issued in the future")

    def _check_signature(self, token: _Token) -> None:
        if token.header.get("alg") != "RS256":
            raise IdTokenRefusal(401, "the identity token must be signed with RS256")
        kid = token.header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise IdTokenRefusal(401, "the identity token names no signing key (kid)")
        verifier = self.certs.verifier(kid)
        if verifier is None:
            raise IdTokenRefusal(401, "the identity token is signed by an unknown signing key")
        try:
            signature = _b64decode(token.signature)
        except ValueError:
            raise IdTokenRefusal(401, "the identity token's signature does not verify") from None
        if not verifier.verify(token.signed, signature):
            raise IdTokenRefusal(401, "the identity token's signature does not verify")

    def _allowed_email(self, token: _Token) -> str:
        email = token.claims.get("email")
        verified = token.claims.get("email_verified") in (True, "true")
        if not isinstance(email, str) or not email or not verified:
            raise IdTokenRefusal(
                403,
                "the identity token carries no verified email: ask for it with the email "
                "claim (the metadata server's format=full, generateIdToken's includeEmail)",
            )
        if email.lower() not in self.invokers:
            raise IdTokenRefusal(
                403, f"{email} may not call the internal service (INTERNAL_INVOKERS)"
            )
        return email


def _bearer(name: str, value: str) -> str:
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise IdTokenRefusal(401, f"{name} must be 'Bearer <ID token>'")
    return token


def _parse(name: str, token: str) -> _Token:
    malformed = IdTokenRefusal(401, f"{name}: not a well-formed ID token")
    parts = token.split(".")
    if len(parts) != 3:
        raise malformed
    try:
        header, claims = (json.loads(_b64decode(part)) for part in parts[:2])
    except ValueError:  # bad base64, bad UTF-8 and bad JSON all are
        raise malformed from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise malformed
    return _Token(header, claims, f"{parts[0]}.{parts[1]}".encode("ascii"), parts[2])


def _b64decode(part: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(part.encode("ascii") + b"=" * (-len(part) % 4))
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ValueError("bad base64") from exc


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None
