"""The message URL's messages (消息与事件接收URL): open each, and decide its answer (messages doc).

``open_message`` checks and decrypts a push exactly as the events URL does (component token
and key, with the key rotation); the message may end with the component's appid or, as
WeChat's own samples leave open (UNCONFIRMED), the account's. ``MessageDispatcher`` checks
that the account in the URL is the one the message was sent to, and decides the answer: the
release check's test accounts first, then the provider's routes (``service.delivery``): a
``pubsub`` route is answered ``success`` once Pub/Sub holds the message, a ``reply`` route
with its service's passive reply or ``success``, and a message no route takes ``success``.

An ordinary message costs no Firestore write, and a read only when this process has not
seen its account within the directory's TTL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from service.account_directory import AuthorizerDirectory
from service.delivery import Delivery
from service.envelopes import message_dedup_key, message_envelope
from service.message_answers import Answer
from service.push_verification import PushRejected, open_envelope
from service.release_responder import ReleaseResponder
from service.routes import Pushed
from service.wechat.crypto import MessageCrypto
from service.wechat.messages import AccountMessage, MessageError, parse_account_message
from service.wechat.release_accounts import ReleaseTestAccount, release_test_account


@dataclass(frozen=True)
class OpenedMessage:
    message: AccountMessage
    xml: str  # decrypted
    used_previous_key: bool


def open_message(
    crypto: MessageCrypto,
    query: Mapping[str, str],
    body: bytes,
    authorizer_appid: str,
    now: float,
    max_clock_skew: float,
    max_bytes: int,
) -> OpenedMessage:
    opened = open_envelope(
        crypto, query, body, now, max_clock_skew, max_bytes, also_accept=(authorizer_appid,)
    )
    try:
        message = parse_account_message(opened.decrypted.message, max_bytes)
    except MessageError as exc:
        raise PushRejected(400, f"bad message: {exc}") from None
    return OpenedMessage(message, opened.decrypted.message, opened.decrypted.used_previous_key)


@dataclass(frozen=True)
class Handled:
    answer: Answer
    release_test: bool
    route: str | None = None
    dedup_key: str | None = None


class MessageDispatcher:
    def __init__(
        self,
        directory: AuthorizerDirectory,
        responder: ReleaseResponder,
        delivery: Delivery,
    ) -> None:
        self.directory = directory
        self.responder = responder
        self.delivery = delivery

    def handle(
        self,
        component_appid: str,
        authorizer_appid: str,
        opened: OpenedMessage,
        received_at: float,
    ) -> Handled:
        """Raises ``DeliveryFailed`` when a ``pubsub`` route could not take the message."""
        message = opened.message
        dedup_key = message_dedup_key(component_appid, authorizer_appid, message)
        test_account = self.test_account(component_appid, authorizer_appid, message)
        if test_account is not None:
            answer = self.responder.respond(component_appid, test_account, message)
            return Handled(answer, release_test=True, dedup_key=dedup_key)
        if not self.delivery.routes:  # nothing to build an envelope for
            return Handled(Answer.success("unrouted"), False, None, dedup_key)
        held = self.directory.lookup(component_appid, authorizer_appid)
        account_type = held.account_type if held is not None else None
        envelope = message_envelope(
            component_appid, authorizer_appid, account_type, message, opened.xml, received_at
        )
        pushed = Pushed(
            source="messages",
            authorizer_appid=authorizer_appid,
            account_type=account_type,
            msg_type=message.msg_type,
            event=message.event,
            info_type=None,
        )
        delivered = self.delivery.deliver(pushed, envelope, message)
        if delivered.reply is not None:
            answer = Answer.passive(delivered.reply, "replied")
        else:
            answer = Answer.success(delivered.kind)
        return Handled(answer, False, delivered.route, dedup_key)

    def test_account(
        self, component_appid: str, authorizer_appid: str, message: AccountMessage
    ) -> ReleaseTestAccount | None:
        """The release check's account this message is for, if any; refuses a message
        whose ``ToUserName`` contradicts the account in the URL."""
        to_user = message.to_user_name
        by_appid = release_test_account(appid=authorizer_appid)
        if by_appid is not None:
            if by_appid.user_name != to_user:
                raise _contradiction(authorizer_appid)
            return by_appid
        held = self.directory.lookup(component_appid, authorizer_appid)
        if held is not None and held.user_name and held.user_name != to_user:
            raise _contradiction(authorizer_appid)
        # A test account named only by its gh_ id, under an appid we do not hold.
        return release_test_account(user_name=to_user)


def _contradiction(authorizer_appid: str) -> PushRejected:
    return PushRejected(400, f"ToUserName is not the account {authorizer_appid} named in the URL")
