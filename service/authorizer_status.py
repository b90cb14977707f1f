"""Every change of an authorizer's status, and of the record's standing around it.

An authorizer is ``authorized``, ``revoked`` or ``needs_reauthorization``. Each move
between them is made here, and nowhere else (``tests/service/test_status_ownership.py``
keeps it so): granted by a code exchange, revoked by an ``unauthorized`` push or by 61003,
refused its refresh token (61023), recovered from or flagged by WeChat's list (sync). So is
what travels with those moves: the profile, the newest push applied, sync's flags and the
record's history.

Each change is one compare-and-set on the record (``AuthorizationStore.modify_authorizer``).
The callers decide when, and say it (``now``): this module reads no clock and calls nobody
but the store. The tokens' own comings and goings (a renewal, an invalidation, the refresh
lease) belong to ``service.authorizer_tokens``.
"""

from __future__ import annotations

import logging
from enum import StrEnum

from service import leases
from service.store.records import (
    AuthorizationStore,
    AuthorizerRecord,
    AuthorizerStatus,
    SyncFlag,
)
from service.wechat.client import AuthorizationInfo, AuthorizerInfo, ListedAuthorizer
from service.wechat.errors import RefreshTokenInvalidError, WeChatError
from service.wechat.messages import AuthorizationGranted, Unauthorized
from service.wechat.release_accounts import is_release_test_appid

log = logging.getLogger(__name__)


class Revocation(StrEnum):
    REVOKED = "revoked"
    ALREADY_REVOKED = "already_revoked"
    STALE = "stale"  # older than the newest push applied: nothing changed


class Reconciled(StrEnum):
    """What sync's compare-and-set did to one listed authorizer."""

    UNCHANGED = "unchanged"
    RACED = "raced"  # written during the walk: newer than the list, left alone
    UPDATED = "updated"  # WeChat's refresh token replaced ours
    RECOVERED = "recovered"
    UNEXCHANGED = "unexchanged"


class AuthorizerStatusKeeper:
    def __init__(self, store: AuthorizationStore) -> None:
        self.store = store

    # ----- the authorization ------------------------------------------------------------

    def grant(
        self,
        component_appid: str,
        info: AuthorizationInfo,
        source: str,
        push: AuthorizationGranted | None,
        now: float,
    ) -> AuthorizerRecord:
        """An exchanged (or recovered) authorization: authorized, with WeChat's tokens."""
        appid = info.authorizer_appid

        def grant(current: AuthorizerRecord | None) -> AuthorizerRecord:
            base = current or AuthorizerRecord(component_appid=component_appid, appid=appid)
            was_authorized = current is not None and current.status == AuthorizerStatus.AUTHORIZED
            kept_refresh = base.refresh_token if was_authorized else None
            expires_in = info.expires_in if info.access_token else None
            last_push = base.last_push_time
            if push is not None and (last_push is None or push.create_time > last_push):
                last_push = push.create_time
            return base.but(
                status=AuthorizerStatus.AUTHORIZED.value,
                func_info=info.func_info,
                access_token=info.access_token,
                # 0, not None, without a token: the sweep's query must find it.
                access_token_expires_at=now + expires_in if expires_in else 0.0,
                refresh_token=info.refresh_token or kept_refresh,
                refresh_token_asked_at=now if info.refresh_token else base.refresh_token_asked_at,
                last_error=None,
                last_error_at=None,
                sync_flag=None,
                release_test=is_release_test_appid(appid),
                authorized_at=base.authorized_at if was_authorized else now,
                updated_at=now,
                revoked_at=None,
                last_push_time=last_push,
            ).with_event(
                now,
                "authorization_updated" if was_authorized else "authorized",
                source=source,
                func_info=list(info.func_info),
            )

        record = self.store.modify_authorizer(component_appid, appid, grant).record
        assert record is not None
        log.info(
            "authorizer authorized",
            extra={
                "component_appid": component_appid,
                "authorizer_appid": appid,
                "source": source,
                "func_info": list(info.func_info),
                "has_refresh_token": bool(info.refresh_token),
            },
        )
        return record

    def store_profile(
        self, component_appid: str, appid: str, profile: AuthorizerInfo
    ) -> AuthorizerRecord | None:
        """Name, type and principal from api_get_authorizer_info, on a record we hold."""

        def fill(current: AuthorizerRecord | None) -> AuthorizerRecord | None:
            if current is None:
                return None
            return current.but(
                account_type=profile.account_type.value,
                nick_name=profile.nick_name,
                principal_name=profile.principal_name,
                user_name=profile.user_name,
                head_img=profile.head_img,
                service_type=profile.service_type,
                verify_type=profile.verify_type,
                account_status=profile.account_status,
            )

        return self.store.modify_authorizer(component_appid, appid, fill).record

    def note_push(
        self, component_appid: str, appid: str, create_time: int
    ) -> AuthorizerRecord | None:
        """A push applied without a grant of its own (its code was exchanged by the
        callback): its time still orders the pushes after it."""

        def bump(current: AuthorizerRecord | None) -> AuthorizerRecord | None:
            if current is None or create_time <= (current.last_push_time or 0):
                return None
            return current.but(last_push_time=create_time)

        return self.store.modify_authorizer(component_appid, appid, bump).record

    def revoke(self, push: Unauthorized, now: float) -> Revocation:
        """The merchant cancelled: the tokens go, the record and its history stay."""
        outcome = Revocation.REVOKED

        def revoke(current: AuthorizerRecord | None) -> AuthorizerRecord | None:
            nonlocal outcome
            if current is not None and push.create_time < (current.last_push_time or 0):
                outcome = Revocation.STALE
                return None
            if current is not None and current.status == AuthorizerStatus.REVOKED:
                outcome = Revocation.ALREADY_REVOKED
                return None
            outcome = Revocation.REVOKED
            base = current or AuthorizerRecord(
                component_appid=push.app_id, appid=push.authorizer_appid
            )
            return base.but(
                status=AuthorizerStatus.REVOKED.value,
                access_token=None,
                access_token_expires_at=None,
                refresh_token=None,
                revoked_at=now,
                updated_at=now,
                last_push_time=push.create_time,
            ).with_event(now, "unauthorized", source="push")

        self.store.modify_authorizer(push.app_id, push.authorizer_appid, revoke)
        return outcome

    # ----- the refresh token refused ----------------------------------------------------

    def refuse_refresh(
        self, taken: AuthorizerRecord, owner: str, used: str, error: WeChatError, now: float
    ) -> AuthorizerRecord | None:
        """WeChat refused ``used`` (61023: ``needs_reauthorization``; 61003: ``revoked``),
        recorded as the refresher's lease ends, in one compare-and-set. The refusal is a
        fact, so it stands even if the lease was taken over meanwhile (``final``)."""
        status = (
            AuthorizerStatus.NEEDS_REAUTHORIZATION
            if isinstance(error, RefreshTokenInvalidError)
            else AuthorizerStatus.REVOKED
        )

        def refused(current: AuthorizerRecord) -> AuthorizerRecord | None:
            if current.status != AuthorizerStatus.AUTHORIZED or current.refresh_token != used:
                # Revoked already, or re-authorized with a new refresh token since: not ours.
                return current.but(last_error=str(error), last_error_at=now)
            marked = current.with_event(now, "refresh_refused", errcode=error.errcode)
            # The refresh token is kept (WeChat may list it again, and sync then recovers it).
            revoked = {"revoked_at": now} if status == AuthorizerStatus.REVOKED else {}
            return current.but(
                **revoked,
                status=status.value,
                access_token=None,
                access_token_expires_at=None,
                last_error=str(error),
                last_error_at=now,
                history=marked.history,
            )

        change = leases.finish(owner, refused, final=True)
        return self.store.modify_authorizer(taken.component_appid, taken.appid, change).record

    # ----- WeChat's list (sync) ---------------------------------------------------------

    def reconcile_listed(
        self,
        component_appid: str,
        entry: ListedAuthorizer,
        asked_at: float,
        seen: AuthorizerRecord | None,
        now: float,
    ) -> Reconciled:
        """Bring the record in line with WeChat's list, if it is still exactly ``seen``
        (read before the walk); ``asked_at``: when the entry's page was asked for."""
        result: list[Reconciled] = []

        def change(current: AuthorizerRecord | None) -> AuthorizerRecord | None:
            result.clear()
            if current != seen:
                result.append(Reconciled.RACED)
                return None
            base = current or AuthorizerRecord(
                component_appid=component_appid, appid=entry.appid, authorized_at=entry.auth_time
            )
            if entry.refresh_token is None:
                return _unexchanged(base, current, now, result)
            return _listed(base, current, entry.refresh_token, asked_at, now, result)

        self.store.modify_authorizer(component_appid, entry.appid, change)
        return result[0] if result else Reconciled.UNCHANGED

    def flag_not_listed(self, seen: AuthorizerRecord) -> None:
        """Held as authorized but not listed: flagged only (the next refresh asks WeChat,
        which answers 61003 if the authorization is really gone)."""

        def flag(current: AuthorizerRecord | None) -> AuthorizerRecord | None:
            if current != seen or current is None:
                return None  # authorized (again) during the walk: the list is older
            return current.but(sync_flag=SyncFlag.NOT_LISTED.value)

        self.store.modify_authorizer(seen.component_appid, seen.appid, flag)


def _listed(
    base: AuthorizerRecord,
    current: AuthorizerRecord | None,
    refresh_token: str,
    asked_at: float,
    now: float,
    result: list[Reconciled],
) -> AuthorizerRecord | None:
    authorized = current is not None and current.status == AuthorizerStatus.AUTHORIZED
    if authorized and base.refresh_token == refresh_token:
        return base.but(sync_flag=None) if base.sync_flag else None
    if authorized:
        if asked_at <= (base.refresh_token_asked_at or 0.0):
            return None  # ours was asked for after the page was read: it is the newer one
        result.append(Reconciled.UPDATED)
        return base.but(
            refresh_token=refresh_token,
            refresh_token_asked_at=asked_at,
            sync_flag=None,
            updated_at=now,
        ).with_event(now, "refresh_token_synced")
    if (
        current is not None
        and current.status == AuthorizerStatus.NEEDS_REAUTHORIZATION
        and current.refresh_token == refresh_token
    ):
        return None  # WeChat refused this very token before; listing it changes nothing
    result.append(Reconciled.RECOVERED)
    return base.but(
        status=AuthorizerStatus.AUTHORIZED.value,
        refresh_token=refresh_token,
        refresh_token_asked_at=asked_at,
        access_token=None,
        access_token_expires_at=0.0,  # due: the next sweep or request renews it
        revoked_at=None,
        sync_flag=None,
        last_error=None,
        last_error_at=None,
        updated_at=now,
    ).with_event(now, "recovered_by_sync")


def _unexchanged(
    base: AuthorizerRecord,
    current: AuthorizerRecord | None,
    now: float,
    result: list[Reconciled],
) -> AuthorizerRecord | None:
    result.append(Reconciled.UNEXCHANGED)
    flagged = base.but(sync_flag=SyncFlag.UNEXCHANGED.value)
    # A usable refresh token of our own, or a status that says so already: flag only.
    if current is not None and (
        current.status == AuthorizerStatus.NEEDS_REAUTHORIZATION
        or (current.status == AuthorizerStatus.AUTHORIZED and current.refresh_token)
    ):
        return None if current.sync_flag == flagged.sync_flag else flagged
    return flagged.but(
        status=AuthorizerStatus.NEEDS_REAUTHORIZATION.value, updated_at=now
    ).with_event(now, "listed_without_refresh_token")
