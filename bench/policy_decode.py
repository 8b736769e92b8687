"""What decoding the claim script's policy argument costs in Redis: nine ARGV slots, a split
into a table, or one string.match (the way claim.lua does it). Not a recorded run of its own:
the figures are in bench/RESULTS.md ("Keys and the packed claim policy").

Usage: .venv/bin/python bench/policy_decode.py [ROUNDS]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from redis_server import RedisServer

N = 200_000  # decodes per EVAL: the loop's own cost is subtracted by the "empty" row
FIELDS = ["30000", "60000", "3", "5", "1000", "86400000", "10000", "604800000"]
FLOW = '{"rl":{"max":100,"per_ms":1000},"cb":{"threshold":5}}'
PACKED = "\x1f".join([*FIELDS, FLOW])
NUMS = ",".join(f"tonumber(ARGV[{i}])" for i in range(1, 9))
SCRIPTS = {
    "empty loop": ("local t=0 for i=1,%d do t=t+1 end return t", []),
    "nine ARGV slots": (
        f"local t=0 for i=1,%d do local a,b,c,d,e,f,g,h={NUMS} local j=ARGV[9] t=t+a end return t",
        [*FIELDS, FLOW],
    ),
    "split into a table": (
        "local function split(s, sep) local out, pos = {}, 1 while true do "
        "local i = string.find(s, sep, pos, true) if not i then out[#out+1]=string.sub(s,pos) "
        "return out end out[#out+1]=string.sub(s,pos,i-1) pos=i+1 end end "
        "local t=0 for i=1,%d do local p=split(ARGV[1],'\\31') "
        "local a,b,c,d,e,f,g,h=tonumber(p[1]),tonumber(p[2]),tonumber(p[3]),tonumber(p[4]),"
        "tonumber(p[5]),tonumber(p[6]),tonumber(p[7]),tonumber(p[8]) t=t+a end return t",
        [PACKED],
    ),
    "one string.match": (
        "local P='^' .. string.rep('(%%-?%%d+)\\31', 8) .. '(.*)$' local t=0 for i=1,%d do "
        "local a,b,c,d,e,f,g,h,j=string.match(ARGV[1],P) a,b,c,d=tonumber(a),tonumber(b),"
        "tonumber(c),tonumber(d) e,f,g,h=tonumber(e),tonumber(f),tonumber(g),tonumber(h) "
        "t=t+a end return t",
        [PACKED],
    ),
}


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    with RedisServer() as server, redis.Redis.from_url(server.url) as r:
        for label, (source, args) in SCRIPTS.items():
            best = float("inf")
            for _ in range(rounds):
                t0 = time.perf_counter()
                r.eval(source % N, 0, *args)
                best = min(best, time.perf_counter() - t0)
            print(f"{label}: {best / N * 1e6:.2f} µs per decode (min of {rounds})")


if __name__ == "__main__":
    main()
