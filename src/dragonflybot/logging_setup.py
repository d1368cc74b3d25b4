"""Structured logs: one line per event, ``key=value`` text or one JSON object.

Every existing ``log.info("...", args)`` call keeps working: the formatters render
the message as usual and add the record's standard fields (time, level, logger)
plus anything passed through ``extra=`` as further keys, so a log shipper can
index ``venue=binance`` without parsing prose. The text form stays readable on a
terminal; the JSON form (encoded by msgspec) is for machines.
"""

from __future__ import annotations

import datetime
import logging
import re
import sys
from typing import Any, Final, TextIO

import msgspec

from dragonflybot.config import LogFormat

_STANDARD: Final = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys()
    | {"message", "asctime", "taskName"}
)
"""Attributes every ``LogRecord`` has: anything else on a record came from ``extra=``."""

_BARE: Final = re.compile(r"[A-Za-z0-9_.:/@+\-]+")
"""Values written without quotes; anything else is quoted with JSON string escapes."""

QUIET_LOGGERS: Final = ("httpx", "httpcore", "purerpc")
"""Libraries that log one line per request or frame: only their warnings, unless debugging."""

SECRET_LOGGERS: Final = ("hpack",)
"""Libraries whose debug lines carry secrets (hpack logs every header block it decodes,
``authorization: Bearer <token>`` included): only their warnings, even when debugging."""


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.datetime.fromtimestamp(record.created, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a caller attached with ``extra=``, in the order given."""
    return {
        k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")
    }


class _StructuredFormatter(logging.Formatter):
    def fields(self, record: logging.LogRecord) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in extra_fields(record).items():
            out.setdefault(key, value)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return out


class KeyValueFormatter(_StructuredFormatter):
    """``ts=... level=info logger=dragonflybot.app msg="..." key=value`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        parts = []
        for key, value in self.fields(record).items():
            text = _text(value)
            quote = key == "msg" or not _BARE.fullmatch(text)
            parts.append(f"{key}={_quoted(text) if quote else text}")
        return " ".join(parts)


class JsonFormatter(_StructuredFormatter):
    """One JSON object per line; values JSON cannot hold are written as their ``str``."""

    def format(self, record: logging.LogRecord) -> str:
        return msgspec.json.encode(self.fields(record), enc_hook=str).decode()


def _text(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple | set | frozenset):
        return ",".join(_text(v) for v in value)
    return str(value)


def _quoted(text: str) -> str:
    return msgspec.json.encode(text).decode()


class _Handler(logging.StreamHandler[TextIO]):
    """Marks the handler ``configure_logging`` owns."""


def make_formatter(log_format: LogFormat) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else KeyValueFormatter()


def configure_logging(
    level: str, log_format: LogFormat = "text", stream: TextIO | None = None
) -> logging.Handler:
    """Send every log record at ``level`` or above to ``stream`` (stderr) in ``log_format``.

    Replaces a handler installed by an earlier call (so calling it again switches
    format rather than printing each line twice) and leaves others alone (a test
    harness's capture handler). Returns the handler installed.
    """
    handler = _Handler(stream if stream is not None else sys.stderr)
    handler.setFormatter(make_formatter(log_format))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    quiet = logging.NOTSET if level == "DEBUG" else logging.WARNING
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(quiet)
    for name in SECRET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    return handler
