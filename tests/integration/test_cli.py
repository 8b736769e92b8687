"""The `jobfleet` command: output, exit codes, and one-line errors instead of tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jobfleet
import pytest
import redis
from jobfleet.keys import QueueKeys, partition_name, partitions_key
from jobfleet.partitions import place


def cli(*args: str, redis_url: str | None = None, env: dict[str, str] | None = None):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("JOBFLEET_")}
    if redis_url:
        full_env["JOBFLEET_REDIS_URL"] = redis_url
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "jobfleet", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=60,
        check=False,
    )


def assert_one_line_error(result, code: int, text: str) -> None:
    assert result.returncode == code, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("jobfleet: ") and text in lines[0], lines


def test_enqueue_job_and_stats(redis_url):
    out = cli(
        "enqueue",
        "send-email",
        '{"to": "ada@example.com"}',
        "--queue",
        "emails",
        "--priority",
        "critical",
        redis_url=redis_url,
    )
    assert out.returncode == 0, out.stderr
    job_id = out.stdout.strip()

    shown = cli("job", job_id, "--queue", "emails", "--json", redis_url=redis_url)
    info = json.loads(shown.stdout)
    assert (info["name"], info["state"], info["priority"]) == ("send-email", "waiting", 0)
    assert info["payload"] == {"to": "ada@example.com"}

    human = cli("job", job_id, "--queue", "emails", redis_url=redis_url).stdout
    assert "state:     waiting" in human and "priority:  critical" in human

    stats = json.loads(cli("stats", "--json", redis_url=redis_url).stdout)
    assert [(s["queue"], s["waiting"]) for s in stats] == [("emails", 1)]
    table = cli("stats", redis_url=redis_url).stdout.splitlines()
    assert table[0].split()[:4] == ["QUEUE", "WAITING", "HELD", "DELAYED"]
    assert table[1].split()[:2] == ["emails", "1"] and table[1].split()[-1] == "ok"

    assert cli("pause", "-q", "emails", redis_url=redis_url).returncode == 0
    paused = cli("stats", "-q", "emails", redis_url=redis_url).stdout.splitlines()[1]
    assert paused.split()[-1] == "paused"
    assert json.loads(cli("stats", "--json", redis_url=redis_url).stdout)[0]["paused"] is True
    assert cli("resume", "-q", "emails", redis_url=redis_url).returncode == 0
    assert cli("stats", "-q", "emails", redis_url=redis_url).stdout.split()[-1] == "ok"


def test_dlq_list_show_replay_purge(redis_url):
    async def make_dead() -> list[str]:
        async with jobfleet.Client(redis_url, queue="q") as c:
            from jobfleet.engine import ClaimPolicy, Failure

            eng = c.engine()
            ids = await c.enqueue_many(
                [{"name": "a" if i % 2 else "b", "payload": i} for i in range(4)]
            )
            pol = ClaimPolicy(lease_ms=9000, worker_ttl_ms=9000, max_attempts=1, poison_after=3)
            jobs = (await eng.claim(token="t", n=4, worker_id="w", policy=pol)).jobs
            fails = [
                Failure(j.id, "t", "KeyError" if j.name == "a" else "IOError", "m", "tb", 0)
                for j in jobs
            ]
            await eng.claim(token="t2", n=0, worker_id="w", policy=pol, failures=fails)
            return ids

    import asyncio

    ids = asyncio.run(make_dead())
    listed = json.loads(cli("dlq", "list", "--json", "-q", "q", redis_url=redis_url).stdout)
    assert sorted(j["id"] for j in listed) == sorted(ids)
    only_a = json.loads(
        cli("dlq", "list", "--json", "-q", "q", "--name", "a", redis_url=redis_url).stdout
    )
    assert {j["name"] for j in only_a} == {"a"} and len(only_a) == 2

    shown = cli("dlq", "show", ids[0], "-q", "q", redis_url=redis_url)
    assert "dead:      attempts exhausted (1 of 1)" in shown.stdout

    replay = cli("dlq", "replay", "-q", "q", "--error-type", "KeyError", redis_url=redis_url)
    assert replay.stdout.strip() == "replayed 2 dead letters"
    refused = cli("dlq", "purge", "-q", "q", redis_url=redis_url)
    assert_one_line_error(refused, 2, "needs --yes")
    purged = cli("dlq", "purge", "-q", "q", "--yes", redis_url=redis_url)
    assert purged.stdout.strip() == "purged 2 dead letters"
    assert cli("dlq", "list", "-q", "q", redis_url=redis_url).stdout.strip() == "no dead letters"


def test_jobs_job_verbs_and_queue_commands(redis_url):
    def run(*args: str):
        return cli(*args, redis_url=redis_url)

    ids = [run("enqueue", "j", str(i), "-q", "q").stdout.strip() for i in range(3)]
    page = json.loads(
        run("jobs", "list", "--state", "waiting", "-q", "q", "--limit", "2", "--json").stdout
    )
    assert [j["id"] for j in page["jobs"]] == ids[:2] and page["next_cursor"]
    rest = run("jobs", "list", "-s", "waiting", "-q", "q", "--cursor", page["next_cursor"])
    assert ids[2] in rest.stdout and "next page" not in rest.stdout
    assert_one_line_error(run("job", "remove", ids[0], "-q", "q"), 2, "add --yes")
    assert run("job", "remove", ids[0], "-q", "q", "--yes").stdout.strip() == (
        f"job {ids[0]} removed"
    )
    cancelled = json.loads(run("job", "cancel", ids[1], "-q", "q", "-y", "--json").stdout)
    assert cancelled == {"id": ids[1], "result": "cancelled"}
    assert_one_line_error(run("job", "cancel", ids[1], "-q", "q", "-y"), 1, "already cancelled")
    assert_one_line_error(run("job", "retry", ids[2], "-q", "q"), 1, "is waiting, not dead")
    assert json.loads(run("job", "show", ids[1], "-q", "q", "--json").stdout)["state"] == (
        "cancelled"
    )
    run("enqueue", "j", "1", "-q", "other")
    listed = json.loads(run("queue", "list", "--json").stdout)
    assert [q["queue"] for q in listed] == ["other", "q"] and listed[1]["cancelled"] == 1
    assert_one_line_error(run("queue", "clear", "q"), 2, "add --yes")
    cleared = run("queue", "clear", "q", "--state", "waiting", "--yes", "--json")
    assert json.loads(cleared.stdout) == {"queue": "q", "count": 1}
    assert_one_line_error(run("queue", "obliterate", "--yes"), 2, "name the queue")
    gone = run("queue", "obliterate", "other", "--yes")
    assert gone.returncode == 0 and "obliterated" in gone.stdout
    assert "other" not in run("queue", "list").stdout


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        (("jobs", "list", "--state", "running"), 2, "invalid choice: 'running'"),
        (("jobs", "list", "-s", "dead", "--limit", "5000"), 1, "limit: must be"),
        (("jobs", "list", "-s", "dead", "--cursor", "zzz"), 1, "cursor: not a cursor"),
        (("job", "frob", "x"), 2, "usage: jobfleet job"),
        (("enqueue", "x", "{not json"), 2, "payload is not valid JSON"),
        (("enqueue", "x", "1", "--priority", "urgent"), 1, "unknown priority 'urgent'"),
        (("enqueue", "x", "1", "--colour", "red"), 2, "unrecognized arguments: --colour red"),
        (("job", "nope", "-q", "q"), 1, "no job 'nope' in queue 'q'"),
        (("dlq", "show", "nope"), 1, "no job 'nope'"),
        (("frobnicate",), 2, "invalid choice: 'frobnicate'"),
        (("worker", "--queue", "q"), 2, "no handler modules"),
        (
            ("worker", "--queue", "q", "--handlers", "no.such.module"),
            1,
            "cannot import handler module 'no.such.module'",
        ),
        (
            ("worker", "--concurrency", "0", "--handlers", "json"),
            1,
            "queue.concurrency: must be a whole number from 1 to 10000",
        ),
        (
            ("worker", "--processes", "0", "--handlers", "json"),
            1,
            "processes: must be a whole number from 1 to 64",
        ),
        (("worker", "--processes", "2", "--queue", "q"), 2, "no handler modules"),
    ],
)
def test_user_mistakes_are_one_clear_line(redis_url, args, code, text):
    assert_one_line_error(cli(*args, redis_url=redis_url), code, text)


def test_malformed_url_and_unreachable_redis_never_leak_the_password():
    bad = cli("stats", "--redis-url", "redis://:hunter2@localhost:notaport/0")
    assert_one_line_error(bad, 1, "malformed Redis URL")
    assert "hunter2" not in bad.stderr
    typo = cli("stats", "--redis-ulr", "redis://:hunter2@localhost/0")
    assert_one_line_error(typo, 2, "unrecognized arguments: --redis-ulr redis://:***@localhost/0")
    down = cli("--redis-url", "redis://:hunter2@127.0.0.1:1/0", "stats")
    assert_one_line_error(down, 1, "cannot reach Redis at redis://:***@127.0.0.1:1/0")
    assert "hunter2" not in down.stderr


def test_worker_refuses_an_evicting_redis(redis_url):
    import redis

    conn = redis.Redis.from_url(redis_url)
    conn.config_set("maxmemory-policy", "allkeys-lru")
    try:
        out = cli(
            "worker", "-q", "q", "--handlers", "json", "--http-port", "0", redis_url=redis_url
        )
    finally:
        conn.config_set("maxmemory-policy", "noeviction")
    assert_one_line_error(out, 1, "maxmemory-policy is 'allkeys-lru'")


def test_enqueue_into_a_group(redis_url):
    out = cli("enqueue", "x", "--queue", "q", "--group", "tenant-42", redis_url=redis_url)
    assert out.returncode == 0, out.stderr
    info = json.loads(
        cli("job", out.stdout.strip(), "-q", "q", "--json", redis_url=redis_url).stdout
    )
    assert info["group"] == "tenant-42"
    stats = json.loads(cli("stats", "-q", "q", "--json", redis_url=redis_url).stdout)
    assert (stats[0]["groups"], stats[0]["top_groups"]) == (1, {"tenant-42": 1})
    bad = cli("enqueue", "x", "-q", "q", "--group", "a:b", redis_url=redis_url)
    assert_one_line_error(bad, 1, "invalid group name 'a:b'")


def test_enqueue_by_partition_key_and_a_worker_refusing_another_partition_count(redis_url):
    conn = redis.Redis.from_url(redis_url)
    conn.set(partitions_key("q"), 4)  # as a worker of a 4-partition queue records it
    out = cli("enqueue", "x", "-q", "q", "--partition-key", "acct-9", redis_url=redis_url)
    assert out.returncode == 0, out.stderr
    job_id = out.stdout.strip()
    assert conn.exists(QueueKeys(partition_name("q", place("acct-9", 4))).job(job_id))
    info = json.loads(cli("job", job_id, "-q", "q", "--json", redis_url=redis_url).stdout)
    assert info["queue"] == "q"
    refused = cli(
        "worker", "-q", "q", "--handlers", "json", "--partitions", "2", redis_url=redis_url
    )
    assert_one_line_error(refused, 1, "has 4 partitions in Redis")
    assert "docs/partitions.md" in refused.stderr
    bad = cli("worker", "-q", "q", "--handlers", "json", "--partitions", "0", redis_url=redis_url)
    assert_one_line_error(bad, 1, "partitions: must be a whole number from 1 to 256")
    conn.close()
