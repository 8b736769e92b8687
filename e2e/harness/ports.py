"""Loopback ports for the containers' health and metrics endpoints."""

from __future__ import annotations

import socket
import threading


class Ports:
    """Hands out free loopback ports, never the same one twice in a harness's life."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._given: set[int] = set()

    def allocate(self) -> int:
        """A port nothing listens on now (the OS picks it; we only avoid our own repeats)."""
        with self._lock:
            while True:
                with socket.socket() as s:
                    s.bind(("127.0.0.1", 0))
                    port = int(s.getsockname()[1])
                if port not in self._given:
                    self._given.add(port)
                    return port
