"""Every WeChat API the mock answers: its stable name, path and methods, as plain data.

The stable name keys fault rules, quota rules and the call log. This table knows nothing
of the state: ``api_handlers`` holds each API's caller check and answer, ``api_dispatch``
runs a call, and ``api`` serves the paths below over HTTP.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class ApiRoute:
    name: str
    path: str
    methods: tuple[str, ...] = ("POST",)
    reads_body: bool = True  # False: any body is ignored (the GET APIs)
    for_authorizer: bool = False  # called with an authorizer access token


def _component(name: str) -> ApiRoute:
    return ApiRoute(name, f"/cgi-bin/component/{name}")


def _authorizer(name: str, path: str, methods: tuple[str, ...] = ("POST",)) -> ApiRoute:
    return ApiRoute(
        name, path, methods=methods, reads_body="GET" not in methods, for_authorizer=True
    )


API_ROUTES: tuple[ApiRoute, ...] = (
    _component("api_component_token"),
    _component("api_start_push_ticket"),
    _component("api_create_preauthcode"),
    _component("api_query_auth"),
    _component("api_get_authorizer_info"),
    _component("api_authorizer_token"),
    _component("api_get_authorizer_list"),
    _component("api_get_authorizer_option"),
    _component("api_set_authorizer_option"),
    _component("get_authorizer_option"),
    _component("set_authorizer_option"),
    ApiRoute("component_clear_quota", "/cgi-bin/component/clear_quota"),
    ApiRoute("component_clear_quota_v2", "/cgi-bin/component/clear_quota/v2"),
    ApiRoute("clear_quota", "/cgi-bin/clear_quota"),
    # The newer document says POST, protocol §8 and WxJava say GET: both are answered.
    _authorizer("getaccountbasicinfo", "/cgi-bin/account/getaccountbasicinfo", ("GET", "POST")),
    _authorizer("message_custom_send", "/cgi-bin/message/custom/send"),
    _authorizer("getcategory", "/cgi-bin/wxopen/getcategory", ("GET",)),
    _authorizer("get_category", "/wxa/get_category", ("GET",)),
    _authorizer("open_create", "/cgi-bin/open/create"),
    _authorizer("open_bind", "/cgi-bin/open/bind"),
    _authorizer("open_unbind", "/cgi-bin/open/unbind"),
    _authorizer("open_get", "/cgi-bin/open/get"),
)

API_TABLE: Mapping[str, ApiRoute] = {route.name: route for route in API_ROUTES}
API_NAMES: frozenset[str] = frozenset(API_TABLE)
