"""Structured logs: one JSON object a line (python-json-logger), with the fields a processor
passes in `extra`: {"level", "logger", "msg", ..., "exc" (a traceback), "ts" (UTC, ISO 8601)}."""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter

FIELDS = {"levelname": "level", "name": "logger", "message": "msg", "exc_info": "exc"}


def formatter() -> logging.Formatter:
    return JsonFormatter(
        "{levelname}{name}{message}", style="{", rename_fields=FIELDS, timestamp="ts"
    )


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiokafka logs every lost connection at ERROR while it reconnects on its own.
    logging.getLogger("aiokafka").setLevel(
        logging.CRITICAL if level.upper() != "DEBUG" else "DEBUG"
    )
