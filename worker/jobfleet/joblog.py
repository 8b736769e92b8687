"""One structured log line per job outcome, and the JSON formatter for every jobfleet line.

The line is on the per-job hot path: nothing is built unless the `jobfleet.job` logger is
enabled for INFO, and then one small dict, which the text format turns into `key=value`
pairs and the JSON format into one object. It never holds the payload unless the worker
runs with `log_payload`, and never an error *message* (messages may quote user data or
secrets): only the error's type.
"""

from __future__ import annotations

import json
import logging
from typing import Any

LOGGER_NAME = "jobfleet.job"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# The outcomes a line may carry; open to more: a consumer of the logs must accept an outcome
# it does not know. A timeout is outcome retried or dead with error_type JobTimeout;
# cancelled is a job stopped by Client.cancel while it ran.
OUTCOMES = ("completed", "retried", "dead", "released", "lost", "abandoned", "cancelled")

MESSAGE = "job %s %s"
INFO = logging.INFO

log = logging.getLogger(LOGGER_NAME)


class JobLog:
    """Writes the outcome line of each job one worker finishes."""

    def __init__(
        self, queue: str, worker_id: str, *, jobs: str = "failures", payload: bool = False
    ) -> None:
        self.queue = queue
        self.worker_id = worker_id
        self.payload = payload
        self.enabled = jobs != "none"
        self.completed = jobs == "all"  # settings.LogJobs

    def finished(
        self,
        job_id: str,
        name: str,
        attempt: int,
        outcome: str,
        seconds: float,
        error_type: str,
        payload: str,
    ) -> None:
        if not self.enabled or (outcome == "completed" and not self.completed):
            return
        if not log.isEnabledFor(INFO):
            return
        fields: dict[str, Any] = {
            "queue": self.queue,
            "job_id": job_id,
            "name": name,
            "attempt": attempt,
            "outcome": outcome,
            "duration_ms": round(seconds * 1000, 3),
            "error_type": error_type or None,
            "worker_id": self.worker_id,
        }
        if self.payload:
            fields["payload"] = payload  # JSON text; spliced in as JSON by the formatter
        # makeRecord + handle is log.info without findCaller's walk up the stack (the caller
        # is always this line): about a third of the cost of a line.
        log.handle(
            log.makeRecord(
                LOGGER_NAME, INFO, "", 0, MESSAGE, (job_id, outcome), None, None, {"job": fields}
            )
        )


def _text_fields(fields: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in fields.items() if v is not None and k != "job_id")


class TextFormatter(logging.Formatter):
    """The classic line; a job line gets its fields appended as key=value."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = getattr(record, "job", None)
        return f"{line} {_text_fields(fields)}" if fields else line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, and a job line's fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 6),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "job", None)
        payload = None
        if fields:
            fields = dict(fields)
            payload = fields.pop("payload", None)
            out.update(fields)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        text = json.dumps(out, separators=(",", ":"), default=str)
        if payload is not None:  # already JSON: splice it in rather than parse and re-encode
            text = f'{text[:-1]},"payload":{payload}}}'
        return text


def formatter(fmt: str) -> logging.Formatter:
    return JsonFormatter() if fmt == "json" else TextFormatter()


def use_format(fmt: str) -> None:
    """Put the format on every handler of the root logger (the CLI's stderr handler)."""
    for handler in logging.getLogger().handlers:
        handler.setFormatter(formatter(fmt))


def configure(level: int, fmt: str) -> None:
    """The CLI's logging: one stderr handler in `fmt` at `level`."""
    logging.basicConfig(level=level)
    use_format(fmt)
