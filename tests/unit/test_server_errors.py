"""Errors to replies: an unexpected exception is a 500 whose traceback is logged once per cause
per minute, not once per request; messages sent back are bounded."""

from __future__ import annotations

import logging

import orjson

from brickwork.errors import InvalidInput
from brickwork.server import _errors


def boom(n: int) -> None:
    raise TypeError(f"bad {n}")


def other() -> None:
    raise KeyError("k")


def reply_for(fn, *args) -> int:
    try:
        fn(*args)
    except Exception as exc:
        return _errors.error_reply(exc)[0][0]
    raise AssertionError("did not raise")


def test_a_500_is_logged_once_per_cause_not_per_request(caplog, monkeypatch):
    monkeypatch.setattr(_errors, "_logged", {})
    with caplog.at_level(logging.ERROR, logger="brickwork.server"):
        statuses = [reply_for(boom, i) for i in range(200)] + [reply_for(other) for _ in range(50)]
    assert set(statuses) == {500}
    records = [r for r in caplog.records if r.name == "brickwork.server"]
    assert len(records) == 2  # one per cause, each with its traceback
    assert all(r.exc_info for r in records)


def test_after_the_window_the_next_one_is_logged_with_the_count_of_those_skipped(caplog, monkeypatch):
    monkeypatch.setattr(_errors, "_logged", {})
    clock = [1000.0]
    monkeypatch.setattr(_errors.time, "monotonic", lambda: clock[0])
    with caplog.at_level(logging.ERROR, logger="brickwork.server"):
        for _ in range(10):
            reply_for(boom, 1)
        clock[0] += _errors.LOG_EVERY_S + 1
        reply_for(boom, 1)
    records = [r for r in caplog.records if r.name == "brickwork.server"]
    assert len(records) == 2 and "9 more like it" in records[1].getMessage()


def test_request_errors_are_not_logged_and_messages_are_bounded(caplog):
    with caplog.at_level(logging.ERROR, logger="brickwork.server"):
        (status, _, body), kind = _errors.error_reply(InvalidInput("x" * 100_000))
    assert status == 400 and kind == "InvalidInput" and not caplog.records
    assert len(orjson.loads(body)["error"]) <= 2000
