"""What redis-py spends packing one script call with the queue's keys as str or as bytes
(jobfleet sends them pre-encoded: `Engine._wire_keys`). Figures in bench/RESULTS.md.

Usage: .venv/bin/python bench/pack_keys.py
"""

from __future__ import annotations

import timeit

from jobfleet.keys import QueueKeys
from redis.asyncio.connection import Connection

CALLS = 20_000
RECORD = "x" * 120  # an enqueue record of one small job


def main() -> None:
    conn = Connection()
    keys = QueueKeys("emails")
    sha = "a" * 40
    for label, script_keys, prefix in (
        ("str keys", keys.script, keys.prefix),
        ("bytes keys", [k.encode() for k in keys.script], keys.prefix.encode()),
    ):

        def pack(k: list[str] | list[bytes] = script_keys, p: str | bytes = prefix) -> None:
            conn.pack_command("EVALSHA", sha, len(k), *k, p, 1, RECORD)

        best = min(timeit.repeat(pack, number=CALLS, repeat=5))
        print(f"{label}: {best / CALLS * 1e6:.2f} µs per call packed (min of 5)")


if __name__ == "__main__":
    main()
