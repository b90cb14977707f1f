"""gunicorn settings: ``gunicorn -c service/gunicorn_conf.py "service:create_app()"``.

Cloud Run's advice: one process per CPU, threads for concurrency, no worker timeout.
Command-line flags override these.
"""

import os

from gunicorn.glogging import Logger  # type: ignore[import-untyped]


class NoAccessLogger(Logger):  # type: ignore[misc]
    """gunicorn's logger without access lines. Cloud Run logs every request itself, and
    with ``logconfig_dict`` set gunicorn builds each line's fields only to have them
    dropped: 5% of a token request's CPU."""

    def access(self, *args: object, **kwargs: object) -> None:
        return None


bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8080')}"
workers = int(os.environ.get("GUNICORN_WORKERS", "1"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
timeout = 0
graceful_timeout = 20
accesslog = None  # Cloud Run logs every request itself.
logger_class = NoAccessLogger
# gunicorn's control socket sits at one fixed path per user; two servers would share it.
control_socket_disable = True
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "service.jsonlog.JsonFormatter"}},
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "stream": "ext://sys.stderr",
        }
    },
    "root": {"handlers": ["stderr"], "level": "INFO"},
    "loggers": {
        "gunicorn.error": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        # Access lines would repeat query strings; Cloud Run logs requests itself.
        "gunicorn.access": {"handlers": [], "level": "CRITICAL", "propagate": False},
    },
}
