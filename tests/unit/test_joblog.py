"""The per-job log line and the formatters: fields, payload only when asked, JSON per line."""

from __future__ import annotations

import json
import logging
import sys

import pytest
from jobfleet.joblog import LOGGER_NAME, JobLog, JsonFormatter, TextFormatter


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def captured() -> list[logging.LogRecord]:
    logger = logging.getLogger(LOGGER_NAME)
    handler = Capture()
    logger.addHandler(handler)
    old = logger.level
    logger.setLevel(logging.INFO)
    yield handler.records
    logger.removeHandler(handler)
    logger.setLevel(old)


def emit(payload: bool = False) -> None:
    JobLog("emails", "pod-1:7:ab12cd34", jobs="all", payload=payload).finished(
        "j1", "send", 3, "dead", 0.0125, "SMTPError", '{"to":"ada@example.com"}'
    )


def test_json_line_has_every_field_and_no_payload(captured: list[logging.LogRecord]) -> None:
    emit()
    line = json.loads(JsonFormatter().format(captured[0]))
    assert line == {
        "ts": line["ts"],
        "level": "INFO",
        "logger": LOGGER_NAME,
        "message": "job j1 dead",
        "queue": "emails",
        "job_id": "j1",
        "name": "send",
        "attempt": 3,
        "outcome": "dead",
        "duration_ms": 12.5,
        "error_type": "SMTPError",
        "worker_id": "pod-1:7:ab12cd34",
    }
    assert line["ts"] == pytest.approx(captured[0].created)


def test_payload_is_spliced_in_as_json_when_asked(captured: list[logging.LogRecord]) -> None:
    emit(payload=True)
    line = json.loads(JsonFormatter().format(captured[0]))
    assert line["payload"] == {"to": "ada@example.com"}
    assert line["outcome"] == "dead"


def test_text_line_lists_fields_and_skips_empty_ones(captured: list[logging.LogRecord]) -> None:
    JobLog("emails", "w", jobs="all").finished("j2", "send", 1, "completed", 0.001, "", "{}")
    text = TextFormatter().format(captured[0])
    assert text.endswith(
        "jobfleet.job: job j2 completed queue=emails name=send attempt=1 outcome=completed "
        "duration_ms=1.0 worker_id=w"
    )
    assert "error_type" not in text and "{}" not in text


def test_log_jobs_picks_the_outcomes(captured: list[logging.LogRecord]) -> None:
    for jobs in ("all", "failures", "none"):
        joblog = JobLog("q", "w", jobs=jobs)
        for outcome in ("completed", "retried", "released"):
            joblog.finished(jobs, "n", 1, outcome, 0.0, "", "{}")
    got = [(r.job["job_id"], r.job["outcome"]) for r in captured]  # type: ignore[attr-defined]
    assert got == [
        ("all", "completed"), ("all", "retried"), ("all", "released"),
        ("failures", "retried"), ("failures", "released"),
    ]  # fmt: skip


def test_nothing_is_logged_below_info(captured: list[logging.LogRecord]) -> None:
    logging.getLogger(LOGGER_NAME).setLevel(logging.WARNING)
    emit()
    assert captured == []


def test_other_lines_become_json_with_their_exception() -> None:
    try:
        raise ValueError("bad")
    except ValueError:
        record = logging.LogRecord("jobfleet.worker", logging.ERROR, "f", 1, "x %d", (5,), None)
        record.exc_info = sys.exc_info()
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "x 5" and line["level"] == "ERROR"
    assert "ValueError: bad" in line["exception"]
    assert "job_id" not in line
