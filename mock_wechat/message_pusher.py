"""Deliver messages to a component's 消息与事件接收URL and judge the answers, as WeChat does.

``POST <message_url, $APPID$ replaced by the account's appid>?signature=&timestamp=&nonce=
&openid=<FromUserName>&encrypt_type=aes&msg_signature=`` with the body
``<xml><ToUserName/><Encrypt/></xml>``, sealed with the component's token, EncodingAESKey
and appid (messages doc §2). The query ``timestamp`` is real wall time, like the event
pushes'; ``CreateTime`` inside is mock time.

Each try has a 5 s timeout, counted from the send until the answer is read. A try without
an HTTP 200 answer in time (timeout, connection error, a non-200 status) is retried, three
tries in all (§3), with the same message (same MsgId and CreateTime) sealed afresh. The
first HTTP 200 answer is judged by ``reply_judge`` and ends the delivery; if every try fails
the outcome is ``no_answer``.

Fault rules naming ``message_push`` apply to each try (``times`` counts tries):

- ``delay``: sleep before the try is sent;
- ``delay_after``: the service answered, but the mock reads its answer only that much
  later; if the try's time then exceeds the timeout, the try has timed out (it ends at the
  timeout, not after the whole hold) and the next try is made;
- ``drop``: the answer is lost (the mock closes the connection without reading it), so the
  try fails and the next one follows at once.

While a try waits for its answer the delivery is in flight (``deliveries``): a custom
message to the same user then is ``before_reply``. The answer counts as back as soon as
the HTTP exchange is over, before any ``delay_after`` hold: the hold is the network's, not
the service's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import requests

from mock_wechat.crypto import MessageCrypto
from mock_wechat.deliveries import Delivery, MessageRefused, Try
from mock_wechat.event_pusher import random_nonce
from mock_wechat.faults import MESSAGE_PUSH, FaultRule
from mock_wechat.models import MessageTarget, MockWeChat
from mock_wechat.reply_judge import NO_ANSWER, UNAVAILABLE, Verdict, judge
from mock_wechat.user_messages import UserMessage
from mock_wechat.wire import MAX_XML_BYTES, message_envelope

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 5.0  # WeChat's, per try (messages doc §3)
TRIES = 3
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class _Answer:
    status: int | None
    body: bytes
    error: str | None  # None: an HTTP 200 answer, read in time
    lost: bool = False  # the service answered, but a drop fault lost the answer


class MessagePusher:
    def __init__(
        self,
        state: MockWeChat,
        timeout: float = DEFAULT_TIMEOUT,
        tries: int = TRIES,
        session_factory: Callable[[], requests.Session] = requests.Session,
    ) -> None:
        self._state = state
        self._timeout = timeout
        self._tries = tries
        self._session_factory = session_factory

    def send(self, authorizer_appid: str, request: UserMessage) -> Delivery:
        """Check, record and deliver one message now, in this thread; the final record.

        Raises what ``MockWeChat.open_delivery`` raises, and MessageRefused when a reset
        wiped the record while the message was on its way.
        """
        delivered = self.deliver(self._state.open_delivery(authorizer_appid, request))
        if delivered is None:
            raise MessageRefused("delivery", "the mock was reset while the message was sent")
        return delivered

    def deliver(self, target: MessageTarget) -> Delivery | None:
        crypto = MessageCrypto(target.token, target.encoding_aes_key, target.component_appid)
        deliveries = self._state.deliveries
        verdict: Verdict | None = None
        last_error = "not attempted"
        with self._session_factory() as session:
            for _ in range(self._tries):
                rule = self._state.take_fault(MESSAGE_PUSH)
                if rule is not None and rule.delay:
                    time.sleep(rule.delay)
                if not deliveries.begin_try(target.delivery_id):
                    return None  # reset meanwhile: the record and its world are gone
                started = time.monotonic()
                try:
                    answer = self._post(session, crypto, target, rule)
                finally:
                    deliveries.try_returned(target.delivery_id)
                answer = self._hold(answer, rule, started)
                seconds = time.monotonic() - started
                if answer.error is None and seconds > self._timeout:
                    answer = _Answer(None, b"", f"timed out after {self._timeout:g}s")
                deliveries.record_try(
                    target.delivery_id, Try(answer.status, answer.error, round(seconds, 3))
                )
                if answer.error is None:
                    verdict = judge(answer.body, crypto, target.openid, target.user_name)
                    break
                last_error = answer.error
        if verdict is None:
            verdict = Verdict(
                NO_ANSWER,
                reason=(
                    f"{self._tries} 次推送均未在 {self._timeout:g} 秒内得到应答 "
                    f"(no HTTP 200 answer in {self._timeout:g} s in {self._tries} tries; "
                    f"last: {last_error})"
                ),
                user_sees=UNAVAILABLE,
            )
        record = deliveries.finish(
            target.delivery_id,
            verdict.outcome,
            verdict.reason,
            verdict.reply,
            verdict.reply_xml,
            verdict.user_sees,
        )
        if record is not None:
            log.info(
                "message push",
                extra={
                    "component": record.component_appid,
                    "authorizer": record.authorizer_appid,
                    "msg_type": record.msg_type,
                    "event": record.event,
                    "outcome": record.outcome,
                    "tries": len(record.tries),
                },
            )
        return record

    def _post(
        self,
        session: requests.Session,
        crypto: MessageCrypto,
        target: MessageTarget,
        rule: FaultRule | None,
    ) -> _Answer:
        timestamp = str(int(time.time()))
        nonce = random_nonce()
        sealed = crypto.seal(target.message, timestamp, nonce)
        params = {
            "signature": sealed.signature,
            "timestamp": timestamp,
            "nonce": nonce,
            "openid": target.openid,
            "encrypt_type": "aes",
            "msg_signature": sealed.msg_signature,
        }
        body = message_envelope(target.user_name, sealed.encrypt)
        try:
            response = session.post(
                target.url,
                params=params,
                data=body.encode("utf-8"),
                headers={"Content-Type": "text/xml"},
                timeout=self._timeout,
                allow_redirects=False,
                stream=True,
            )
        except requests.Timeout:
            return _Answer(None, b"", f"timed out after {self._timeout:g}s")
        except requests.RequestException as exc:
            # Only the class name: the text would repeat the URL and its signatures.
            return _Answer(None, b"", f"request failed: {type(exc).__name__}")
        with response:
            if rule is not None and rule.drop:
                return _Answer(None, b"", "answer lost: the connection was dropped", lost=True)
            if response.status_code != 200:
                return _Answer(response.status_code, b"", f"HTTP {response.status_code}")
            try:
                return _Answer(200, _read(response), None)
            except requests.RequestException as exc:
                return _Answer(200, b"", f"answer not read: {type(exc).__name__}")

    def _hold(self, answer: _Answer, rule: FaultRule | None, started: float) -> _Answer:
        """A ``delay_after`` fault: read the answer later, or not at all past the timeout."""
        if rule is None or not rule.delay_after or (answer.error is not None and not answer.lost):
            return answer
        remaining = self._timeout - (time.monotonic() - started)
        if rule.delay_after <= remaining:
            time.sleep(rule.delay_after)
            return answer
        time.sleep(max(0.0, remaining))
        if answer.lost:
            return answer
        held = f"timed out after {self._timeout:g}s (the answer was held {rule.delay_after:g}s)"
        return _Answer(None, b"", held)


def _read(response: requests.Response) -> bytes:
    """The answer's body, cut one byte past what the XML parser accepts."""
    body = bytearray()
    for chunk in response.iter_content(_CHUNK):
        body.extend(chunk)
        if len(body) > MAX_XML_BYTES:
            break
    return bytes(body[: MAX_XML_BYTES + 1])
