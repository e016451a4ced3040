"""Structured JSON logs on stderr, each line carrying the current trace and span ids."""

from __future__ import annotations

import logging
import sys

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter


class _TraceContextFilter(logging.Filter):
    """Adds ``trace_id``/``span_id`` of the active span so logs can be joined with traces."""

    def filter(self, record: logging.LogRecord) -> bool:
        ctx = trace.get_current_span().get_span_context()
        record.trace_id = format(ctx.trace_id, "032x") if ctx.is_valid else ""
        record.span_id = format(ctx.span_id, "016x") if ctx.is_valid else ""
        return True


def configure_logging(service_name: str, level: str = "INFO") -> None:
    """Route the root logger to one JSON line per record; idempotent."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_TraceContextFilter())
    handler.setFormatter(
        JsonFormatter(
            "{asctime}{levelname}{name}{message}{trace_id}{span_id}",
            style="{",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            static_fields={"service": service_name},
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiokafka logs every reconnect attempt at ERROR while the broker is down; the relay and the
    # consumer report the outage once, and readiness shows it.
    handler.addFilter(_drop_reconnect_noise)


def _drop_reconnect_noise(record: logging.LogRecord) -> bool:
    return not (record.name.startswith("aiokafka") and str(record.msg).startswith("Unable connect"))
