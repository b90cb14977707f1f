"""Wiring: builds the store, the WeChat client and the core managers from the settings.

Everything is made on first use inside the serving process, so nothing connects at import
time and no gRPC channel crosses a gunicorn fork.
"""

from __future__ import annotations

from functools import cached_property

from service.account_directory import AuthorizerDirectory
from service.authorization_event_dispatch import PushDispatcher
from service.authorization_links import LinkIssuer
from service.authorization_pushes import AuthorizationPushes
from service.authorizer_options import AuthorizerOptions
from service.authorizer_sync import AuthorizerSync
from service.authorizer_tokens import AuthorizerTokenManager, AuthorizerTokenPolicy
from service.code_exchange import CodeExchanger, ExchangePolicy
from service.component_token import ComponentTokenManager, TokenPolicy
from service.config import Settings
from service.delivery import Delivery
from service.message_dispatch import MessageDispatcher
from service.open_account_group import OpenAccountGroup
from service.open_accounts import OpenAccountManager
from service.proxy import AuthorizerProxy
from service.publisher import Publisher
from service.quota_clearing import QuotaClearer
from service.readiness import ReadinessCheck
from service.redaction import register_secrets
from service.release_responder import ReleaseResponder
from service.release_sends import ReleaseSendPolicy, ReleaseSends
from service.store.firestore import FirestoreStore
from service.store.records import AuthorizationStore
from service.sweep import RefreshSweep, SweepPolicy
from service.sweep_shards import ShardPublisher, ShardRunner, SweepProgress
from service.tickets import TicketKeeper, TicketPolicy
from service.wechat.client import ComponentClient
from service.wechat.crypto import MessageCrypto


class Runtime:
    def __init__(
        self,
        settings: Settings,
        store: AuthorizationStore | None = None,
        client: ComponentClient | None = None,
    ) -> None:
        self.settings = settings
        # Never in a log line, whoever writes it (service.redaction).
        register_secrets(
            [*settings.service_api_keys]
            + [
                value
                for c in settings.components.values()
                for value in (c.secret, c.token, c.encoding_aes_key, c.previous_encoding_aes_key)
            ]
        )
        self._store = store
        self._client = client
        self._crypto: dict[str, MessageCrypto] = {}

    @cached_property
    def store(self) -> AuthorizationStore:
        return self._store or FirestoreStore(
            project=self.settings.google_cloud_project, database=self.settings.firestore_database
        )

    @cached_property
    def client(self) -> ComponentClient:
        return self._client or ComponentClient(self.settings.wechat_api_base)

    @cached_property
    def readiness(self) -> ReadinessCheck:
        first = next(iter(self.settings.components))
        return ReadinessCheck(
            lambda deadline: self.store.get_component(first, deadline=deadline),
            self.settings.wechat_api_base,
        )

    @cached_property
    def tickets(self) -> TicketKeeper:
        return TicketKeeper(
            self.store,
            self.client,
            self.settings.components,
            TicketPolicy(
                stale_after=self.settings.ticket_stale_after,
                min_interval=self.settings.push_ticket_min_interval,
            ),
        )

    @cached_property
    def component_tokens(self) -> ComponentTokenManager:
        return ComponentTokenManager(
            self.store,
            self.client,
            self.settings.components,
            self.tickets,
            TokenPolicy(
                refresh_margin=self.settings.component_token_refresh_margin,
                lease_seconds=self.settings.refresh_lease_seconds,
            ),
        )

    @cached_property
    def authorizer_tokens(self) -> AuthorizerTokenManager:
        settings = self.settings
        return AuthorizerTokenManager(
            self.store,
            self.client,
            self.component_tokens,
            AuthorizerTokenPolicy(
                min_ttl=settings.authorizer_token_min_ttl,
                lease_seconds=settings.refresh_lease_seconds,
                quota_backoff=settings.quota_backoff,
            ),
        )

    @cached_property
    def sweep(self) -> RefreshSweep:
        settings = self.settings
        return RefreshSweep(
            self.store,
            self.tickets,
            self.component_tokens,
            self.authorizer_tokens,
            SweepPolicy(
                margin=settings.authorizer_token_refresh_margin,
                jitter=settings.sweep_jitter,
                concurrency=settings.sweep_concurrency,
            ),
            self.release_sends,
            fanout=self.shard_publisher,
        )

    def _firestore(self, what: str) -> FirestoreStore:
        store = self.store
        if not isinstance(store, FirestoreStore):
            raise RuntimeError(f"{what} needs the Firestore store")
        return store

    @cached_property
    def sweep_progress(self) -> SweepProgress:
        """sweeps/<id>: the fanned-out sweeps' progress (service.sweep_shards)."""
        return SweepProgress(self._firestore("SWEEP_MODE=fanout"))

    @cached_property
    def shard_publisher(self) -> ShardPublisher | None:
        """SWEEP_MODE=fanout: the sweep's shards to SWEEP_SHARD_TOPIC; None inline."""
        settings = self.settings
        topic = settings.sweep_shard_topic
        if settings.sweep_mode != "fanout" or topic is None:
            return None
        if not topic.startswith("projects/"):
            topic = f"projects/{settings.google_cloud_project}/topics/{topic}"
        return ShardPublisher(
            self._firestore("SWEEP_MODE=fanout"),
            self.sweep_progress,
            # Off WeChat's 5 s path: a longer wait, and no batching wait per shard.
            Publisher(deadline=10.0, max_latency=0.0),
            topic,
            settings.sweep_shard_size,
            settings.sweep_shard_deadline,
        )

    @cached_property
    def shard_runner(self) -> ShardRunner:
        """Renews the shards pushed to /tasks/refresh-shard (one pool per process)."""
        settings = self.settings
        return ShardRunner(
            self._firestore("POST /tasks/refresh-shard"),
            self.authorizer_tokens,
            self.sweep_progress,
            settings.sweep_concurrency,
            settings.sweep_jitter,
        )

    @cached_property
    def proxy(self) -> AuthorizerProxy:
        return AuthorizerProxy(
            self.settings.wechat_api_base, self.authorizer_tokens, self.settings.proxy_timeout
        )

    @cached_property
    def open_accounts(self) -> OpenAccountManager:
        return OpenAccountManager(self.proxy)

    @cached_property
    def open_account_group(self) -> OpenAccountGroup | None:
        """Scene 2's report and action; None without GROUP_OPEN_APPID."""
        group = self.settings.group_open_appid
        if group is None:
            return None
        return OpenAccountGroup(
            self.store, self.open_accounts, tuple(self.settings.components), group
        )

    @cached_property
    def options(self) -> AuthorizerOptions:
        return AuthorizerOptions(self.client, self.component_tokens, self.authorizer_tokens)

    @cached_property
    def quotas(self) -> QuotaClearer:
        return QuotaClearer(self.client, self.settings.components, self.authorizer_tokens)

    @cached_property
    def sync(self) -> AuthorizerSync:
        return AuthorizerSync(
            self.store, self.client, self.component_tokens, self.code_exchange.fill_profile
        )

    @cached_property
    def links(self) -> LinkIssuer:
        return LinkIssuer(self.client, self.component_tokens, self.settings)

    @cached_property
    def code_exchange(self) -> CodeExchanger:
        return CodeExchanger(
            self.store,
            self.client,
            self.component_tokens,
            ExchangePolicy(lease_seconds=self.settings.refresh_lease_seconds),
        )

    @cached_property
    def authorization_pushes(self) -> AuthorizationPushes:
        return AuthorizationPushes(self.store, self.code_exchange)

    @cached_property
    def release_sends(self) -> ReleaseSends:
        return ReleaseSends(
            self.store,
            self.code_exchange,
            self.authorizer_tokens,
            self.proxy,
            ReleaseSendPolicy(lease_seconds=self.settings.refresh_lease_seconds),
        )

    @cached_property
    def delivery(self) -> Delivery:
        return Delivery(
            self.settings.message_routes,
            Publisher(
                self.settings.message_publish_deadline,
                self.settings.message_publish_max_latency,
            ),
            self.settings.google_cloud_project,
        )

    @cached_property
    def messages(self) -> MessageDispatcher:
        return MessageDispatcher(
            AuthorizerDirectory(self.store), ReleaseResponder(self.release_sends), self.delivery
        )

    @cached_property
    def pushes(self) -> PushDispatcher:
        return PushDispatcher(self.tickets, self.authorization_pushes, self.store, self.delivery)

    def crypto(self, appid: str) -> MessageCrypto:
        if appid not in self._crypto:
            component = self.settings.components[appid]
            self._crypto[appid] = MessageCrypto(
                component.token,
                component.encoding_aes_key,
                component.appid,
                previous_encoding_aes_key=component.previous_encoding_aes_key,
            )
        return self._crypto[appid]
