"""Command line: ``python -m mock_wechat serve --host 127.0.0.1 --port 8081``.

Serves the WeChat API routes and the ``/_mock/`` control plane with werkzeug's threaded
server, runs the ticket scheduler, logs JSON lines to stderr and exits cleanly on SIGTERM
or SIGINT. One line on stdout says where it listens.
"""

from __future__ import annotations

import argparse
import logging
import re
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType
from typing import Any

from werkzeug.serving import WSGIRequestHandler, make_server

from mock_wechat.api import DROPPED
from mock_wechat.app import create_app
from mock_wechat.models import MockWeChat
from mock_wechat.pusher import Pusher
from mock_wechat.scheduler import TicketScheduler
from service.jsonlog import configure_logging

log = logging.getLogger("mock_wechat")
_QUERY = re.compile(r"\?\S*")


class JsonRequestHandler(WSGIRequestHandler):
    """Werkzeug's handler with JSON access logs that leave out the query string.

    The query carries component access tokens, so neither the access line nor an error
    line may repeat it.
    """

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        environ = getattr(self, "environ", {})
        log.info(
            "request",
            extra={
                "method": getattr(self, "command", None),
                "path": _QUERY.sub("", getattr(self, "path", "")),
                "status": "dropped" if environ.get(DROPPED) else str(code),
            },
        )

    def log(self, type: str, message: str, *args: Any) -> None:
        text = _QUERY.sub("?…", message % args if args else message)
        logging.getLogger("werkzeug").log(
            logging.ERROR if type == "error" else logging.INFO, "http server: %s", text
        )


CONTROL_PLANE_HELP = """\
control plane (JSON; bad input is 400 {"error": "..."}):
  GET    /_mock/healthz                       readiness: {"status": "ok"}
  POST   /_mock/components                    register {appid, secret, token, encoding_aes_key,
                                              event_url, auth_domain, ticket_interval?=600,
                                              auto_push?=true, push_retries?=0}
  GET    /_mock/components[/<appid>]          list (secrets left out)
  PATCH  /_mock/components/<appid>            ticket_interval, auto_push, push_retries, event_url
  POST   /_mock/components/<appid>/push-ticket  issue and push a ticket now
  GET    /_mock/calls[?api=NAME]              the API call log
  GET    /_mock/pushes                        the push log
  GET|POST|DELETE /_mock/faults               {"rules": [{api, errcode?, http_status?, delay?,
                                              drop?, times?}]}, matched first-wins
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
            "component_verify_ticket messages to the component's event URL and answers "
            "/cgi-bin/component/* calls."
        ),
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="run the mock HTTP server until SIGTERM or SIGINT",
        description="Run the mock HTTP server until SIGTERM or SIGINT.",
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
    return parser


def serve(host: str, port: int, scheduler_tick: float) -> None:
    state = MockWeChat()
    pusher = Pusher(state)
    server = make_server(
        host, port, create_app(state, pusher), threaded=True, request_handler=JsonRequestHandler
    )
    scheduler = TicketScheduler(state, pusher, tick=scheduler_tick)

    def stop(signum: int, frame: FrameType | None) -> None:
        log.info("stopping", extra={"signal": signal.Signals(signum).name})
        # shutdown() waits for serve_forever() to return, which runs in this very thread.
        threading.Thread(target=server.shutdown, name="mock-wechat-shutdown").start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    scheduler.start()
    url = f"http://{host}:{server.port}"
    print(f"mock_wechat listening on {url}", flush=True)
    log.info("listening", extra={"url": url})
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        scheduler.stop()
        pusher.shutdown()
        server.server_close()
        log.info("stopped")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level)
    if args.command == "serve":
        serve(args.host, args.port, args.scheduler_tick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
