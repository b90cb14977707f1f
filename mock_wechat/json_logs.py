"""The mock's log format: one JSON object per record on stderr.

Each line has ``severity``, ``message``, ``time``, ``logger``, ``pid``, and whatever came in
through ``extra=``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any

# What every LogRecord carries; any other attribute came in through ``extra=``.
_BUILT_IN = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
}


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": record.levelname,
            "message": record.getMessage(),
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "logger": record.name,
            "pid": os.getpid(),
        }
        entry.update(
            (key, value)
            for key, value in vars(record).items()
            if key not in _BUILT_IN and not key.startswith("_")
        )
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def log_json_lines(level: str = "INFO") -> None:
    """Every logger's records to stderr as JSON lines; calling it again changes the level."""
    root = logging.getLogger()
    if not any(isinstance(h.formatter, JsonLines) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonLines())
        root.handlers = [handler]
    root.setLevel(level.upper())
    # urllib3 writes whole URLs at DEBUG, and the mock's URLs carry tokens and signatures.
    logging.getLogger("urllib3").setLevel(logging.WARNING)
