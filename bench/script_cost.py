"""Redis CPU per call of the one-job enqueue script, pipelined so no round trip counts:
the shipped EVALSHA, the same fast path as a Redis Function (a prototype loaded here, not
shipped), `return {}` with and without the same keys and arguments, and the script's five
commands sent bare (the profile of issue 15's single-enqueue target; INFO commandstats).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit, sync_redis
from jobfleet import scripts
from jobfleet.engine import EncodedJob, Engine

N = 20000
CHUNK = 500
# The fast path of lua/enqueue.lua (one job, no options) as a Function, to weigh EVALSHA.
FUNCTION = """#!lua name=jfprobe
local BAND = 281474976710656
redis.register_function('enqueue_probe', function(KEYS, ARGV)
  local t = redis.call('TIME')
  local id, prio = ARGV[3], ARGV[5]
  local seq = redis.call('HINCRBY', KEYS[6], 'seq', 1)
  redis.call('HSET', ARGV[1] .. 'job:' .. id, 'name', ARGV[4], 'payload', ARGV[6],
    'priority', prio, 'enqueued_at', t[1] * 1000 + math.floor(t[2] / 1000),
    'state', 'waiting', 'seq', seq)
  redis.call('ZADD', KEYS[1], tonumber(prio) * BAND + seq, id)
  redis.call('HINCRBY', KEYS[7], 'enqueued_total', 1)
  if redis.call('LLEN', KEYS[8]) == 0 then redis.call('RPUSH', KEYS[8], '1') end
  return {}
end)
"""


def main() -> None:
    r = sync_redis()
    # The real keys and arguments of a one-job enqueue, as bench/wire.py's redis_side builds them.
    eng = Engine(r, "single")  # type: ignore[arg-type]  # only its keys and prefix
    keys = eng.keys.script

    def args(i: int) -> list[object]:
        job = EncodedJob(id=f"{i:032x}", name="email", payload=f'{{"i": {i}}}', priority=2)
        return [eng.prefix, *Engine._enqueue_args([job])]

    sha = r.script_load(scripts.source("enqueue"))
    empty = r.script_load("return {}")

    def bare(p: Any, i: int) -> None:
        p.hincrby("m", "seq", 1)
        p.hset(f"j{i}", mapping={"name": "email", "payload": "{}", "state": "waiting"})
        p.zadd("ready", {f"j{i}": i})
        p.hincrby("s", "enqueued_total", 1)
        p.llen("w")

    variants: dict[str, Callable[[Any, int], None]] = {
        "evalsha_enqueue": lambda p, i: p.evalsha(sha, len(keys), *keys, *args(i)),
        "fcall_enqueue_probe": lambda p, i: p.fcall("enqueue_probe", len(keys), *keys, *args(i)),
        "evalsha_empty_same_args": lambda p, i: p.evalsha(empty, len(keys), *keys, *args(i)),
        "evalsha_empty_no_args": lambda p, i: p.evalsha(empty, 0),
        "bare_commands": bare,
    }
    out: dict[str, object] = {"bench": "script_cost", "calls": N}
    for name, call in variants.items():
        r.flushall()
        r.function_load(FUNCTION, replace=True)
        r.script_load(scripts.source("enqueue"))
        r.script_load("return {}")
        r.config_resetstat()
        p = r.pipeline(transaction=False)
        for i in range(N):
            call(p, i)
            if i % CHUNK == CHUNK - 1:
                p.execute()
        p.execute()
        stats = r.info("commandstats")
        skip = ("config", "info", "flushall", "function", "script")
        usec = sum(v["usec"] for k, v in stats.items() if not any(s in k for s in skip))
        out[f"{name}_us"] = round(usec / N, 2)
    emit(out)


if __name__ == "__main__":
    main()
