"""Structured log lines: key=value text and JSON, with ``extra=`` fields and tracebacks."""

from __future__ import annotations

import io
import json
import logging
import re
import sys
from collections.abc import Iterator

import pytest

from dragonflybot.logging_setup import (
    JsonFormatter,
    KeyValueFormatter,
    configure_logging,
    extra_fields,
)

TS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def record(msg: str, *args: object, **extra: object) -> logging.LogRecord:
    logger = logging.getLogger("dragonflybot.test")
    return logger.makeRecord(
        logger.name, logging.WARNING, __file__, 1, msg, args, None, extra=extra or None
    )


def test_text_is_one_key_value_line_with_the_message_quoted() -> None:
    line = KeyValueFormatter().format(
        record("%s: reconnect #%d", "binance", 3, venue="binance", delay=0.25, note="a b")
    )
    assert re.fullmatch(
        rf'ts={TS} level=warning logger=dragonflybot\.test msg="binance: reconnect #3" '
        r'venue=binance delay=0\.25 note="a b"',
        line,
    ), line


def test_text_escapes_what_would_break_the_line() -> None:
    line = KeyValueFormatter().format(record('say "hi"\nthen=go', key='x"y'))
    assert "\n" not in line
    assert line.endswith(r'msg="say \"hi\"\nthen=go" key="x\"y"')


def test_json_is_one_object_per_line_with_the_extra_fields() -> None:
    line = JsonFormatter().format(
        record("live venues: %s", "binance", instrument="ETH-BTC", live=["binance"], n=None)
    )
    assert "\n" not in line
    data = json.loads(line)
    assert re.fullmatch(TS, data.pop("ts"))
    assert data == {
        "level": "warning",
        "logger": "dragonflybot.test",
        "msg": "live venues: binance",
        "instrument": "ETH-BTC",
        "live": ["binance"],
        "n": None,
    }


def test_json_writes_values_it_cannot_encode_as_text() -> None:
    data = json.loads(JsonFormatter().format(record("x", where=object)))
    assert data["where"] == "<class 'object'>"


@pytest.mark.parametrize("formatter", [KeyValueFormatter(), JsonFormatter()])
def test_a_traceback_stays_inside_the_one_line(formatter: logging.Formatter) -> None:
    logger = logging.getLogger("dragonflybot.test")
    try:
        raise ValueError("boom")
    except ValueError:
        rec = logger.makeRecord(
            logger.name,
            logging.ERROR,
            __file__,
            1,
            "failed",
            (),
            exc_info=sys.exc_info(),
        )
    line = formatter.format(rec)
    assert "\n" not in line
    assert "ValueError: boom" in line.replace("\\n", "\n")


def test_only_extra_fields_are_extra() -> None:
    assert extra_fields(record("plain")) == {}
    assert extra_fields(record("with", venue="bitstamp")) == {"venue": "bitstamp"}


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name in ("httpx", "httpcore", "hpack", "purerpc"):
        logging.getLogger(name).setLevel(logging.NOTSET)


@pytest.mark.usefixtures("restore_logging")
def test_configure_logging_switches_format_without_duplicating_lines() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging("INFO", "text", first)
    configure_logging("INFO", "json", second)
    log = logging.getLogger("dragonflybot.test")
    log.info("hello %s", "there", extra={"k": 1})
    log.debug("not shown")
    assert first.getvalue() == ""
    lines = second.getvalue().splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0])["msg"] == "hello there"
    assert json.loads(lines[0])["k"] == 1
    assert logging.getLogger("httpx").level == logging.WARNING


@pytest.mark.usefixtures("restore_logging")
def test_hpack_never_logs_headers_even_when_debugging() -> None:
    """hpack's debug lines carry every header, bearer tokens included."""
    configure_logging("DEBUG", "text", io.StringIO())
    assert logging.getLogger("hpack").getEffectiveLevel() == logging.WARNING
    assert logging.getLogger("purerpc").getEffectiveLevel() == logging.DEBUG
