"""The key names have one home (jobfleet.keys): the Lua scripts agree with it."""

import re
from importlib import resources

from jobfleet import keys
from jobfleet.engine import ClaimPolicy

LUA = resources.files("jobfleet") / "lua"


def test_script_keys_match_lib_lua():
    lib = (LUA / "lib.lua").read_text()
    slots = re.findall(r"KEYS\[(\d+)\]", lib)
    # Every key but the last, `absent`, which no script touches (keys.py says why).
    assert [int(s) for s in slots] == list(range(1, len(keys.SCRIPT_KEYS)))
    assert keys.SCRIPT_KEYS[-1] == "absent"
    for path in LUA.iterdir():
        assert f"KEYS[{len(keys.SCRIPT_KEYS)}]" not in path.read_text()


def test_every_key_lua_builds_from_prefix_is_defined():
    suffixes = {
        keys.JOB,
        keys.DEDUP,
        keys.WORKER_WAKE,
        keys.HOLD,
        keys.RATE_WINDOW,
        keys.CB_WINDOW,
        keys.GROUP_READY,
        keys.RING,
        keys.GROUP_BACKLOG,
        keys.GROUP_HELD,
        keys.GROUP_ACTIVE,
        keys.GROUP_LIMITS,
        keys.GROUP_RATE,
    }
    built = set()
    for path in LUA.iterdir():
        built |= set(re.findall(r"PREFIX \.\. '([a-z]+:?)'", path.read_text()))
    assert built and built <= suffixes


def test_queue_keys():
    k = keys.QueueKeys("emails")
    assert k.prefix == "jf:{emails}:"
    assert k.ready == "jf:{emails}:ready" and k.drain == "jf:{emails}:drain"
    assert k.script == [getattr(k, n) for n in keys.SCRIPT_KEYS]
    assert k.job("a1") == "jf:{emails}:job:a1"
    assert k.worker_wake("pod:1") == "jf:{emails}:wake:pod:1"
    assert keys.cron_tick("nightly", 17) == k_job_id("nightly", 17)


def k_job_id(schedule: str, tick: int) -> str:
    return f"{keys.cron_field(schedule)}:{tick}"


def test_claim_policy_packs_once():
    policy = ClaimPolicy(
        lease_ms=5, worker_ttl_ms=6, max_attempts=3, poison_after=2, flow='{"x":1}'
    )
    assert policy.packed == '5\x1f6\x1f3\x1f2\x1f-1\x1f-1\x1f-1\x1f-1\x1f{"x":1}'


def test_lua_knows_the_number_of_priority_levels():
    from jobfleet.job import Priority

    lib = (LUA / "lib.lua").read_text()
    assert re.search(r"^local N_LEVELS = (\d+)", lib, re.M).group(1) == str(len(Priority))
