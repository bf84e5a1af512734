"""The server's log helpers: JSON lines, the access line, 5xx lines with their causes and a
cap on how many a second, breaker transitions on the engine logger."""

from __future__ import annotations

import io
import json
import logging

import pytest

from brickwork.errors import ModelError, WorkerCrashed
from brickwork.faults import CircuitBreaker
from brickwork.options import Breaker
from brickwork.server import _log
from brickwork.server._log import AccessLog, configure, log_error


@pytest.fixture
def captured():
    stream = io.StringIO()
    handler = configure(level="info", fmt="json", stream=stream, flush_s=0.0)
    yield stream
    logging.getLogger().removeHandler(handler)
    logging.getLogger("brickwork").setLevel(logging.NOTSET)


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_access_line_has_every_field(captured):
    AccessLog().infer("POST", "/v2/models/m/infer", "m", 200, 0.0012345, "r-1", {"risk": "rules"})
    (doc,) = lines(captured)
    assert doc["logger"] == "brickwork.access" and doc["level"] == "info"
    assert doc["msg"] == "POST /v2/models/m/infer 200 1.234ms model=m id=r-1 rungs=risk=rules"
    assert (doc["method"], doc["path"], doc["status"], doc["model"], doc["request_id"], doc["rungs"]) == (
        "POST", "/v2/models/m/infer", 200, "m", "r-1", {"risk": "rules"})
    assert doc["latency_ms"] == pytest.approx(1.234, abs=1e-3)


def test_5xx_line_carries_the_cause_chain(captured):
    try:
        try:
            raise ValueError("bad weights")
        except ValueError as inner:
            raise ModelError("brick 'm' raised ValueError: bad weights") from inner
    except ModelError as exc:
        log_error("POST", "/v2/models/m/infer", "m", 500, exc, "r-2")
    (doc,) = lines(captured)
    assert doc["level"] == "error" and doc["status"] == 500 and doc["request_id"] == "r-2"
    assert doc["cause"] == "ModelError: brick 'm' raised ValueError: bad weights <- ValueError: bad weights"


def test_5xx_lines_are_capped_per_second_and_the_rest_counted(captured, monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(_log.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(_log, "_errors", _log._Limiter(3))
    for _ in range(10):
        log_error("POST", "/p", "m", 503, WorkerCrashed("down"))
    clock[0] += 1.5
    log_error("POST", "/p", "m", 503, WorkerCrashed("down"))
    docs = lines(captured)
    assert len(docs) == 4 and all(d["level"] == "warning" for d in docs)
    assert docs[-1]["held_back"] == 7 and "7 more 5xx lines held back" in docs[-1]["msg"]


def test_breaker_transitions_are_logged(captured):
    now = [0.0]
    b = CircuitBreaker(Breaker(failures=2, reset_after_s=1.0), clock=lambda: now[0], name="gbm")
    b.record(False)
    b.record(False)
    now[0] = 2.0
    assert b.allow()
    b.record(True)
    msgs = [d["msg"] for d in lines(captured)]
    assert msgs == ["circuit breaker of stage 'gbm': closed -> open for 1 s",
                    "circuit breaker of stage 'gbm': open -> half_open (probing)",
                    "circuit breaker of stage 'gbm': half_open -> closed"]


def test_text_format_and_bad_settings():
    stream = io.StringIO()
    handler = configure(level="warning", fmt="text", stream=stream, flush_s=0.0)
    try:
        AccessLog().infer("POST", "/p", "m", 200, 0.001, None, None)  # info: below the level
        logging.getLogger("brickwork.server").warning("hello")
        assert stream.getvalue().endswith(" WARNING brickwork.server: hello\n")
        assert "brickwork.access" not in stream.getvalue()
    finally:
        logging.getLogger().removeHandler(handler)
        logging.getLogger("brickwork").setLevel(logging.NOTSET)
    with pytest.raises(ValueError, match="'text' or 'json'"):
        configure(fmt="xml")
    with pytest.raises(ValueError, match="log level"):
        configure(level="loud")
