"""The browser tier's stack: the real admin server (`jobfleet admin`) and real workers
(`jobfleet worker` subprocesses running dash_handlers.py) on one redis-server."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import jobfleet
import pytest

T = TypeVar("T")
HERE = Path(__file__).parent
# Whether a test's call phase failed (set by the tier's conftest, read by the page fixture).
FAILED = pytest.StashKey[bool]()


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBFLEET_")}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


@dataclass
class AdminServer:
    """`jobfleet admin` on a free loopback port, with an admin and a viewer token, and a viewer
    token that `revoke()` takes out of the tokens file (the server re-reads it)."""

    redis_url: str
    directory: Path
    admin_token: str = field(default_factory=lambda: "adm-" + secrets.token_urlsafe(24))
    viewer_token: str = field(default_factory=lambda: "view-" + secrets.token_urlsafe(24))
    revocable_token: str = field(default_factory=lambda: "rev-" + secrets.token_urlsafe(24))
    proc: subprocess.Popen[bytes] | None = None
    url: str = ""

    @property
    def log(self) -> Path:
        return self.directory / "admin.log"

    def start(self) -> None:
        self._write_tokens(self.revocable_token)
        args = ["admin", "--tokens", str(self.tokens), "--host", "127.0.0.1", "--port", "0"]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "jobfleet", "--redis-url", self.redis_url, *args],
                env=_clean_env(),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while True:
            found = re.search(r"admin API on (http://127\.0\.0\.1:\d+)", self.output())
            if found:
                self.url = found.group(1) + "/"
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"jobfleet admin did not start:\n{self.output()[-3000:]}")
            time.sleep(0.05)
        with urllib.request.urlopen(self.url + "healthz", timeout=30) as reply:
            assert reply.status == 200

    @property
    def tokens(self) -> Path:
        return self.directory / "tokens"

    def _write_tokens(self, *more_viewers: str) -> None:
        lines = [f"admin {self.admin_token}", f"viewer {self.viewer_token}"]
        lines += [f"viewer {token}" for token in more_viewers]
        staged = self.tokens.with_suffix(".new")
        staged.write_text("\n".join(lines) + "\n")
        staged.chmod(0o600)
        staged.replace(self.tokens)  # at once, as a Secret's update is

    def revoke(self) -> None:
        self._write_tokens()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)


@dataclass
class Workers:
    """`jobfleet worker` subprocesses, one queue each, running dash_handlers.py."""

    redis_url: str
    directory: Path
    procs: list[tuple[subprocess.Popen[bytes], Path]] = field(default_factory=list)

    def start(self, queue: str, **queue_settings: Any) -> None:
        settings = {
            "redis_url": self.redis_url,
            "handlers": ["dash_handlers"],
            "http_port": None,
            "queue": {
                "name": queue,
                # Failures retry at once, so a failing job is a dead letter in moments.
                "backoff": {"kind": "fixed", "base": 0.05, "cap": 0.05, "jitter": "none"},
                **queue_settings,
            },
        }
        log = self.directory / f"worker-{queue}-{len(self.procs)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "jobfleet", "worker"],
                cwd=HERE,
                env=_clean_env(JOBFLEET_SETTINGS=json.dumps(settings)),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.procs.append((proc, log))

    def output(self) -> str:
        return "\n".join(log.read_text(errors="replace") for _, log in self.procs)

    def stop(self) -> None:
        for proc, _ in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc, _ in self.procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)


class Jobs:
    """A jobfleet.SyncClient on a thread of its own: between its calls playwright's sync API
    leaves an event loop marked running on the test's thread, where SyncClient's cannot run."""

    def __init__(self, redis_url: str) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="jobs")
        self._client = self._call(lambda: jobfleet.SyncClient(redis_url))

    def _call(self, fn: Callable[[], T]) -> T:
        return self._pool.submit(fn).result(timeout=120)

    def enqueue(self, queue: str, payload: Any, name: str = "send-email", **options: Any) -> str:
        return self._call(lambda: self._client.enqueue(name, payload, queue=queue, **options))

    def pause(self, queue: str) -> None:
        self._call(lambda: self._client.pause(queue=queue))

    def close(self) -> None:
        self._call(self._client.close)
        self._pool.shutdown()
