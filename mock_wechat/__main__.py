"""The command line: ``serve`` runs the mock; the client commands drive a running one.

The client commands are ``authorize`` (``merchant_client``), ``send-message`` and
``release-check`` (``message_cli``). ``python -m mock_wechat serve --port 8081`` serves
the WeChat API routes and the ``/_mock/`` control plane (``server``: gunicorn, keep-alive),
runs the ticket scheduler, logs JSON lines to stderr and exits cleanly on SIGTERM or
SIGINT. One line on stdout says where it listens.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import requests

from mock_wechat import message_cli
from mock_wechat.json_logs import log_json_lines
from mock_wechat.merchant_client import Merchant, MerchantError
from mock_wechat.protocol import AUTH_TYPE_LISTS, DEFAULT_AUTH_TYPE
from mock_wechat.server import serve

DEFAULT_MOCK = "http://127.0.0.1:8081"


CONTROL_PLANE_HELP = """\
WeChat APIs (POST, JSON). The API name used by fault rules, quota rules and the call log is
the path's last part, or the one in brackets. Component token in ?component_access_token= or
?access_token=:
  /cgi-bin/component/api_component_token, api_start_push_ticket (appid + secret, no token)
  /cgi-bin/component/api_create_preauthcode, api_query_auth, api_get_authorizer_info,
    api_authorizer_token, api_get_authorizer_list {offset, count 1..500},
    api_get_authorizer_option, api_set_authorizer_option
  /cgi-bin/component/get_authorizer_option, set_authorizer_option   authorizer token (or a
    component token with component_appid and authorizer_appid)
  /cgi-bin/component/clear_quota [component_clear_quota]   appsecret or component token
  /cgi-bin/component/clear_quota/v2 [component_clear_quota_v2]  {component_appid, appsecret,
    appid?}
  /cgi-bin/clear_quota [clear_quota]   {appid} with that account's own token

on an authorizer's behalf (?access_token=<authorizer_access_token>):
  GET|POST /cgi-bin/account/getaccountbasicinfo                 any live authorization
  POST /cgi-bin/message/custom/send [message_custom_send]       needs permission set 1 or 19;
    45015 unless touser wrote to the account in the last 48 h of mock time; waits up to 1 s
    for a message push to touser still awaiting the service's answer, and is recorded
    before_reply if one still is
  GET  /cgi-bin/wxopen/getcategory, /wxa/get_category           needs set 18
  POST /cgi-bin/open/create|bind|unbind|get [open_create, ...]  needs set 24 or 25
  checks: token (41001 missing, 40001 unknown, revoked or superseded 300 s ago, 42001
  expired), then the quota (45009), then the permission set (61007)

authorization pages (HTML; Referer and redirect_uri must be on the component's auth_domain):
  GET    /cgi-bin/componentloginpage          PC: QR code + "scan as admin"
  GET    /safe/bindcomponent, /wxaopen/safe/bindcomponent   H5: "open as this WeChat user"
  GET    /safe/authorizelist?session&admin[&authorizer_appid]   accounts, then permission sets
  POST   /safe/authorize                      confirm or deny; 302 to redirect_uri

control plane (JSON; bad input is 400 {"error": "..."}, unknown 404, conflict 409):
  GET    /_mock/healthz                       readiness: {"status": "ok"}
  POST   /_mock/components                    register {appid, secret, token, encoding_aes_key,
                                              event_url, auth_domain, ticket_interval?=600,
                                              auto_push?=true, push_retries?=0,
                                              auth_push?="sync"|"hold",
                                              rotate_refresh_tokens?=false,
                                              authorizer_token_latency?=0 (seconds before
                                              every api_authorizer_token answer),
                                              message_url? (消息与事件接收URL, must contain
                                              $APPID$)}
  GET    /_mock/components[/<appid>]          list (secrets left out)
  PATCH  /_mock/components/<appid>            ticket_interval, auto_push, push_retries, event_url,
                                              auth_push, rotate_refresh_tokens,
                                              authorizer_token_latency, message_url
  POST   /_mock/components/<appid>/push-ticket  issue and push a ticket now
  POST   /_mock/components/<appid>/authorizers/seed  {count 1..20000, type?="official_account"
                                              |"mini_program"}: that many new accounts, each
                                              authorized with all its permission sets and its
                                              code exchanged (no push); 201 {"authorizers":
                                              [{authorizer_appid, refresh_token}]}
  POST   /_mock/accounts                      merchant account {type, nick_name, principal_name,
                                              admin, appid?, user_name?, alias?, head_img?,
                                              signature?, service_type?, verify_type?,
                                              account_status?=1}
  GET    /_mock/accounts[/<appid>]            list; one with its authorizations
  POST   /_mock/authorize                     the pages headlessly {component_appid,
                                              pre_auth_code, authorizer_appid, admin?,
                                              category_ids?, redirect_uri?, auth_type?,
                                              biz_appid?, category_id_list?}
  POST   /_mock/accounts/<appid>/unauthorize  {component_appid}: merchant cancels, push sent
  POST   /_mock/accounts/<appid>/update-authorization  {component_appid, category_ids}
  POST   /_mock/authorizers/<appid>/messages  a user's message or event, delivered now to the
                                              component's message_url ($APPID$ replaced) as
                                              WeChat does: encrypted, 5 s per try, 3 tries
                                              {component_appid, msg_type (text, image, voice,
                                              video, shortvideo, location, link, event, ...),
                                              content?, event? (with msg_type event),
                                              from_user?, fields? {Name: value}, msg_id?,
                                              create_time?}; answers the delivery {id,
                                              openid, msg_id, message, tries [{http_status,
                                              error, seconds}], outcome (reply, success,
                                              empty, invalid, no_answer), reason, reply,
                                              reply_xml, user_sees, sent_at, answered_at};
                                              404 unknown account or component, 409 not
                                              authorized or no message_url
  GET    /_mock/authorizers/<appid>/messages  the deliveries to that account
  POST   /_mock/components/<appid>/release-check  the 全网发布 check, run now {group? 1..5 |
                                              all_groups? (neither: one group at random),
                                              send_deadline?=10 (seconds for the customer-
                                              service message; the mock's choice)}: {groups,
                                              passed, steps [{group, account, account_type,
                                              step, name, passed, reason, seconds}]}; steps
                                              ticket, then per account authorize, text,
                                              api_text, event
  GET    /_mock/calls[?api=NAME]              the API call log
  GET    /_mock/credentials                   every ticket, token and code issued since the reset
  GET    /_mock/pushes                        the push log, with each decrypted message
  POST   /_mock/pushes/redeliver              {"index": N}: send log entry N again
  GET    /_mock/pushes/held                   pushes held by auth_push "hold"
  POST   /_mock/pushes/release                deliver the held pushes in order
  GET|POST|DELETE /_mock/faults               {"rules": [{api, errcode?, http_status?, delay?,
                                              delay_after?, drop?, times?}]}, matched
                                              first-wins; delay sleeps before the call is
                                              processed, delay_after after it (the state has
                                              changed; with drop the answer is then lost).
                                              api "message_push": each try of a message push
                                              (not matched by "*"; no errcode/http_status):
                                              delay sleeps before the try, delay_after holds
                                              the service's answer (past 5 s in all the try
                                              timed out and is retried), drop loses the
                                              answer (the try fails and is retried)
  GET|POST|DELETE /_mock/quotas               {"rules": [{api, limit, appid?}]}: daily limits per
                                              account (45009 past it); GET shows today's usage;
                                              counters reset at midnight UTC+8 and by clear_quota
  GET|POST /_mock/open-accounts               open platform accounts; POST {principal_name,
                                              appids?} makes one "on the website" (API: 89003)
  GET    /_mock/messages                      custom messages sent through the API (mock time,
                                              before_reply)
  GET|POST /_mock/clock                       {"advance": seconds} moves the mock clock forward
  POST   /_mock/reset                         start over
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mock_wechat",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=CONTROL_PLANE_HELP,
        description=(
            "A stateful mock of WeChat's open platform (第三方平台) API server. Register a "
            "component with POST /_mock/components; it then pushes encrypted "
            "component_verify_ticket messages to the component's event URL and answers the "
            "WeChat API calls listed below. Create merchant accounts with POST /_mock/accounts "
            "and authorize them on the HTML pages or with POST /_mock/authorize."
        ),
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="run the mock HTTP server until SIGTERM or SIGINT",
        description="Run the mock HTTP server until SIGTERM or SIGINT.",
        # What the server serves is what someone reading ``serve --help`` wants to know.
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=CONTROL_PLANE_HELP,
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    serve.add_argument(
        "--port",
        type=int,
        default=8081,
        help="port to bind; 0 picks a free one (default %(default)s)",
    )
    serve.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="minimum level of the JSON log lines on stderr (default %(default)s)",
    )
    serve.add_argument(
        "--scheduler-tick",
        type=float,
        default=0.05,
        help="seconds between checks for due ticket pushes (default %(default)s)",
    )
    authorize = commands.add_parser(
        "authorize",
        help="play the merchant headlessly through the real authorization pages",
        description=(
            "Open the service's entry page, follow its PC or H5 link to the mock's "
            "authorization page, scan as the account's admin, pick the account, confirm, "
            "follow the redirect to the service's callback and print its result. "
            "Exits 0 when the callback shows the account authorized, 1 otherwise."
        ),
    )
    authorize.add_argument("--service", required=True, help="the service's base URL")
    authorize.add_argument(
        "--mock", default=DEFAULT_MOCK, help="mock WeChat's base URL (default %(default)s)"
    )
    authorize.add_argument("--component", required=True, help="the component appid")
    authorize.add_argument("--account", required=True, help="the merchant account's appid")
    authorize.add_argument(
        "--auth-type",
        type=int,
        default=DEFAULT_AUTH_TYPE,
        choices=sorted(AUTH_TYPE_LISTS),
        help="which account types the page lists (default %(default)s)",
    )
    authorize.add_argument("--biz-appid", help="let only this account be authorized")
    authorize.add_argument(
        "--page", choices=["pc", "h5"], default="pc", help="which link to follow (default pc)"
    )
    authorize.add_argument("--admin", help="scan as this admin (default: the account's admin)")
    authorize.add_argument(
        "--categories",
        help="comma-separated permission-set ids to keep ticked (default: all offered)",
    )
    authorize.add_argument("--deny", action="store_true", help="press deny instead of confirm")
    message_cli.add_commands(commands, DEFAULT_MOCK)
    return parser


def play_merchant(args: argparse.Namespace) -> int:
    try:
        keep = [int(x) for x in args.categories.split(",")] if args.categories else None
    except ValueError:
        print("error: --categories must be ids separated by commas", file=sys.stderr)
        return 2
    try:
        result = Merchant(args.mock).authorize(
            args.service,
            args.component,
            args.account,
            auth_type=args.auth_type,
            page=args.page,
            admin=args.admin,
            keep_categories=keep,
            deny=args.deny,
            biz_appid=args.biz_appid,
        )
    except MerchantError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except requests.RequestException as exc:
        print(f"error: cannot reach a page ({type(exc).__name__}): {exc}", file=sys.stderr)
        return 1
    print(result.describe())
    return 0 if result.outcome == "authorized" else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "authorize":
        return play_merchant(args)
    if args.command == "send-message":
        return message_cli.send_message(args)
    if args.command == "release-check":
        return message_cli.release_check(args)
    log_json_lines(args.log_level)
    serve(args.host, args.port, args.scheduler_tick, args.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
