"""A stand-in for Google's ID-token signer: RSA keys, their certificates served the way
https://www.googleapis.com/oauth2/v1/certs serves them (a JSON object of key id to PEM
certificate, with Cache-Control), and ID tokens signed with them as Google signs them.

Used by the unit tests (Flask test client) and by the e2e tests (gunicorn fetches the
certificates over HTTP from the server this test process runs).
"""

from __future__ import annotations

import datetime
import http.server
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt, jwt

from devstack.processes import free_port

GOOGLE_ISSUER = "https://accounts.google.com"
SIGNATURE_REMOVED = "SIGNATURE_REMOVED_BY_GOOGLE"  # what Cloud Run leaves of a checked token


class SigningKey:
    """One RSA key, its key id, and its self-signed certificate in PEM."""

    def __init__(self, kid: str) -> None:
        self.kid = kid
        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, kid)])
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.private_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .sign(self.private_key, hashes.SHA256())
        )
        self.certificate_pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
        private_pem = self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self.signer = crypt.RSASigner.from_string(private_pem, key_id=kid)

    def sign(self, claims: dict[str, Any], kid: str | None = None) -> str:
        """A JWT of ``claims``, RS256, with ``kid`` (this key's id unless told otherwise)."""
        token: bytes = jwt.encode(self.signer, claims, key_id=kid or self.kid)
        return token.decode()


def claims(
    email: str,
    audience: str,
    *,
    issuer: str = GOOGLE_ISSUER,
    issued_at: float | None = None,
    lifetime: float = 3600,
    **extra: Any,
) -> dict[str, Any]:
    """The claims of a Google ID token for a service account (``format=full``)."""
    iat = int(time.time() if issued_at is None else issued_at)
    return {
        "aud": audience,
        "azp": "112233445566778899000",
        "email": email,
        "email_verified": True,
        "exp": iat + int(lifetime),
        "iat": iat,
        "iss": issuer,
        "sub": "112233445566778899000",
        **extra,
    }


def strip_signature(token: str) -> str:
    """The token as Cloud Run passes it on after checking it."""
    return token.rsplit(".", 1)[0] + "." + SIGNATURE_REMOVED


class CertsServer:
    """Serves the published keys' certificates on a free loopback port, from a thread.

    ``published`` is the list of keys served; ``failing`` makes it answer 500; ``fetches``
    counts the GETs, so tests can see the service's cache at work.
    """

    def __init__(self, *published: SigningKey, max_age: int = 3600) -> None:
        self.published = list(published)
        self.max_age = max_age
        self.failing = False
        self.fetches = 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's method name)
                server.fetches += 1
                if server.failing:
                    self.send_response(500)
                    self.end_headers()
                    return
                body = json.dumps({k.kid: k.certificate_pem for k in server.published}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Cache-Control", f"public, max-age={server.max_age}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/oauth2/v1/certs"

    @contextmanager
    def running(self) -> Iterator[CertsServer]:
        thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        thread.start()
        try:
            yield self
        finally:
            self.httpd.shutdown()
            self.httpd.server_close()
            thread.join(5)
