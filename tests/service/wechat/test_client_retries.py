"""Which calls the client repeats, over a real socket: a lost answer is retried only for
calls that are safe to repeat; a code exchange or a quota reset is sent once and reported
as "reached", so the caller asks WeChat what happened instead of guessing."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from devstack.processes import free_port
from service.wechat.client import ONCE_ONLY, ComponentClient
from service.wechat.errors import TransportError


class AnswerLosingServer:
    """Accepts each request, reads it whole, and closes the connection without answering:
    the call reached WeChat, and its answer was lost on the way back."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._socket.accept()
            except OSError:
                return
            with connection:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = connection.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                while len(body) < length:
                    body += connection.recv(65536)
                self.requests.append(head.split(b"\r\n")[0])

    def close(self) -> None:
        self._socket.close()


@pytest.fixture
def lossy() -> Iterator[AnswerLosingServer]:
    server = AnswerLosingServer()
    yield server
    server.close()


def client(port: int) -> ComponentClient:
    return ComponentClient(f"http://127.0.0.1:{port}", timeout=2, sleep=lambda _: None)


def test_a_code_exchange_whose_answer_is_lost_is_sent_once_and_reported_reached(
    lossy: AnswerLosingServer,
) -> None:
    with pytest.raises(TransportError) as lost:
        client(lossy.port).api_query_auth("wx0123456789abcdef", "queryauthcode@@@x", "token")
    assert lost.value.reached is True
    assert len(lossy.requests) == 1, lossy.requests


def test_a_quota_reset_whose_answer_is_lost_is_sent_once(lossy: AnswerLosingServer) -> None:
    with pytest.raises(TransportError) as lost:
        client(lossy.port).clear_quota("wx0123456789abcdef", "secret")
    assert lost.value.reached is True
    assert len(lossy.requests) == 1, lossy.requests


def test_a_safe_call_whose_answer_is_lost_is_retried(lossy: AnswerLosingServer) -> None:
    with pytest.raises(TransportError):
        client(lossy.port).api_create_preauthcode("wx0123456789abcdef", "token")
    assert len(lossy.requests) == 3, lossy.requests  # the first try and 2 retries


def test_a_call_that_cannot_connect_is_reported_not_reached() -> None:
    with pytest.raises(TransportError) as refused:
        client(free_port()).api_query_auth("wx0123456789abcdef", "queryauthcode@@@x", "token")
    assert refused.value.reached is False
    assert "not sent" in str(refused.value)


def test_only_the_single_use_calls_are_once_only() -> None:
    assert ONCE_ONLY == {"api_query_auth", "clear_quota"}
