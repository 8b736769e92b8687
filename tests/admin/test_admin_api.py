"""The admin API's endpoints through a real server and a real redis-server: what each does,
and the problem each mistake gets."""

from __future__ import annotations

import pytest
import redis
from jobfleet import Client


def dbsize(url: str) -> int:
    with redis.Redis.from_url(url) as conn:
        return int(conn.dbsize())


async def test_whoami_names_the_tokens_role(server):
    assert (await server.call("GET", "/api/v1/whoami", who="admin"))[:2] == (200, {"role": "admin"})
    assert (await server.call("GET", "/api/v1/whoami", who="viewer"))[1] == {"role": "viewer"}


async def test_enqueue_then_read_the_job_and_the_queue(server):
    status, body, resp = await server.call(
        "POST", "/api/v1/queues/emails/jobs", json={"name": "send", "payload": {"to": "ada"}}
    )
    assert status == 201 and resp.content_type == "application/json"
    job_id = body["id"]
    status, job, _ = await server.call("GET", f"/api/v1/queues/emails/jobs/{job_id}", who="viewer")
    assert status == 200
    assert (job["id"], job["name"], job["payload"], job["state"]) == (
        job_id,
        "send",
        {"to": "ada"},
        "waiting",
    )
    status, stats, _ = await server.call("GET", "/api/v1/queues/emails", who="viewer")
    assert (status, stats["queue"], stats["waiting"]) == (200, "emails", 1)
    status, listing, _ = await server.call("GET", "/api/v1/queues", who="viewer")
    assert status == 200 and [q["queue"] for q in listing["queues"]] == ["emails"]


async def test_enqueue_takes_every_job_option(server):
    job = {
        "name": "send",
        "priority": "critical",
        "delay": 60,
        "job_id": "order-42",
        "max_attempts": 3,
        "timeout": 5,
    }
    assert (await server.call("POST", "/api/v1/queues/q/jobs", json=job))[:2] == (
        201,
        {"id": "order-42"},
    )
    info = await server.client.get("order-42")
    assert (info.state.value, info.priority.name, info.max_attempts) == ("delayed", "CRITICAL", 3)
    # The same job_id again writes nothing and answers with the first job's id.
    again = await server.call("POST", "/api/v1/queues/q/jobs", json={**job, "delay": None})
    assert again[:2] == (201, {"id": "order-42"})
    assert (await server.client.get("order-42")).state.value == "delayed"


async def test_enqueue_into_a_group_and_a_bad_group_name(server, redis_url):
    jobs = [{"name": "n", "group": "tenant-1"}, {"name": "n", "group": "tenant-2"}]
    status, body, _ = await server.call("POST", "/api/v1/queues/q/jobs/bulk", json={"jobs": jobs})
    assert status == 201
    assert (await server.client.get(body["ids"][0])).group == "tenant-1"
    status, stats, _ = await server.call("GET", "/api/v1/queues/q", who="viewer")
    assert (stats["waiting"], stats["groups"]) == (2, 2)
    before = dbsize(redis_url)
    status, problem, _ = await server.call(
        "POST", "/api/v1/queues/q/jobs", json={"name": "n", "group": "a:b"}
    )
    assert status == 422 and "invalid group name 'a:b'" in problem["detail"]
    assert dbsize(redis_url) == before


async def test_a_dedup_key_admits_one_job(server):
    first = await server.call("POST", "/api/v1/queues/q/jobs", json={"name": "a", "dedup_key": "k"})
    second = await server.call(
        "POST", "/api/v1/queues/q/jobs", json={"name": "a", "dedup_key": "k"}
    )
    assert first[1] == second[1]
    assert (await server.client.inspect()).waiting == 1


async def test_bulk_enqueue_writes_all_or_nothing(server, redis_url):
    jobs = [{"name": "n", "payload": i} for i in range(5)]
    status, body, _ = await server.call("POST", "/api/v1/queues/q/jobs/bulk", json={"jobs": jobs})
    assert status == 201 and len(body["ids"]) == 5
    before = dbsize(redis_url)
    jobs[3]["delay"] = -1
    status, problem, resp = await server.call(
        "POST", "/api/v1/queues/q/jobs/bulk", json={"jobs": jobs}
    )
    assert status == 422 and resp.content_type == "application/problem+json"
    assert problem["detail"] == "body.jobs.3.delay: must be a finite number from 0 to 315360000"
    assert problem["errors"] == [
        {"loc": "body.jobs.3.delay", "message": "must be a finite number from 0 to 315360000"}
    ]
    assert dbsize(redis_url) == before


async def test_bulk_is_capped_at_1000_jobs(server):
    jobs = [{"name": "n"}] * 1001
    status, problem, _ = await server.call(
        "POST", "/api/v1/queues/q/jobs/bulk", json={"jobs": jobs}
    )
    assert status == 422 and problem["errors"][0]["loc"] == "body.jobs"
    assert "at most 1000" in problem["detail"]


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        (b"{", 400, "body is not valid JSON"),
        (b'{"name": "x", "delay": NaN}', 422, "body.delay: must be a finite number"),
        (b'{"name": "x", "delay": 1e999}', 422, "body.delay: must be a finite number"),
        (b'{"name": "x", "payload": {"v": NaN}}', 422, "not JSON-serializable"),
        (b'{"name": "x", "colour": "red"}', 422, "body.colour: unknown field"),
        (b'{"payload": 1}', 422, "body.name: Field required"),
        (b"[1]", 422, "body: Input should be an object"),
        (b'{"name": "x", "priority": "urgent"}', 422, "unknown priority 'urgent'"),
        (b'{"name": "x", "delay": 1, "run_at": 2}', 422, "either delay or run_at"),
    ],
)
async def test_bad_bodies_get_a_specific_problem_and_write_nothing(
    server, redis_url, body, status, detail
):
    before = dbsize(redis_url)
    got, problem, resp = await server.call(
        "POST", "/api/v1/queues/q/jobs", data=body, headers={"Content-Type": "application/json"}
    )
    assert (got, resp.content_type) == (status, "application/problem+json"), problem
    assert problem["status"] == status and problem["title"]
    assert detail in problem["detail"], problem
    assert dbsize(redis_url) == before


@pytest.mark.parametrize(
    ("path", "loc"),
    [
        ("/api/v1/queues/bad%20name", "path.queue: invalid queue name"),
        ("/api/v1/queues/q/dead-letters?limit=0", "query.limit: must be a whole number from 1"),
        ("/api/v1/queues/q/dead-letters?limit=201", "query.limit: must be a whole number from 1"),
        ("/api/v1/queues/q/dead-letters?limit=ten", "query.limit: Input should be a valid int"),
        ("/api/v1/queues/q/dead-letters?cursor=zz", "cursor: not a cursor"),
    ],
)
async def test_bad_parameters_are_named(server, path, loc):
    status, problem, _ = await server.call("GET", path, who="viewer")
    # A cursor is the library's to judge: its ConfigError names it without the "query.".
    assert status == 422 and problem["detail"].removeprefix("query.").startswith(
        loc.removeprefix("query.")
    ), problem


async def test_an_unknown_job_is_a_404_naming_it(server):
    status, problem, _ = await server.call("GET", "/api/v1/queues/q/jobs/nope", who="viewer")
    assert status == 404 and problem["detail"] == "no job 'nope' in queue 'q'"


async def test_unknown_routes_and_methods(server):
    status, problem, resp = await server.call("GET", "/api/v1/nothing", who="viewer")
    assert (status, resp.content_type) == (404, "application/problem+json")
    assert problem["detail"] == "no endpoint at /api/v1/nothing"
    status, problem, resp = await server.call("PUT", "/api/v1/whoami")
    assert status == 405 and resp.headers["Allow"] == "GET"
    assert problem["detail"] == "PUT is not allowed on /api/v1/whoami (allowed: GET)"


async def test_pause_and_resume_answer_with_the_stats(server):
    status, stats, _ = await server.call("POST", "/api/v1/queues/q/pause")
    assert (status, stats["paused"]) == (200, True)
    assert (await server.client.inspect()).paused
    status, stats, _ = await server.call("POST", "/api/v1/queues/q/resume")
    assert (status, stats["paused"]) == (200, False)


async def test_workers_lists_the_live_ones(server):
    assert (await server.call("GET", "/api/v1/queues/q/workers", who="viewer"))[1] == {
        "workers": []
    }


async def test_dead_letters_page_by_cursor_with_the_filters_kept(server, dead_letters):
    ids = await dead_letters("a", "a", "a", "b")
    base = "/api/v1/queues/q/dead-letters"
    status, page, _ = await server.call("GET", f"{base}?name=a&limit=2", who="viewer")
    assert status == 200 and len(page["jobs"]) == 2 and page["next_cursor"]
    assert {j["name"] for j in page["jobs"]} == {"a"}
    link = page["links"]["next"]
    assert link.startswith(base + "?") and "name=a" in link and "limit=2" in link
    status, last, _ = await server.call("GET", link, who="viewer")
    assert status == 200 and len(last["jobs"]) == 1
    assert last["next_cursor"] is None and last["links"]["next"] is None
    seen = {j["id"] for j in page["jobs"] + last["jobs"]}
    assert seen == set(ids[:3])


async def test_replay_and_purge_dead_letters(server, dead_letters):
    ids = await dead_letters("a", "b", "c")
    base = "/api/v1/queues/q/dead-letters"
    status, body, _ = await server.call("POST", base + "/replay", json={"ids": [ids[0]]})
    assert (status, body) == (200, {"count": 1})
    assert (await server.client.get(ids[0])).state.value == "waiting"
    status, body, _ = await server.call("POST", base + "/purge", json={"name": "b"})
    assert (status, body) == (200, {"count": 1})
    assert await server.client.dlq.count() == 1
    status, problem, _ = await server.call(
        "POST", base + "/purge", json={"ids": [ids[2]], "name": "c"}
    )
    assert status == 422 and "either ids or the filters" in problem["detail"]
    assert await server.client.dlq.count() == 1


async def test_problems_hide_the_redis_password(tokens_file, tokens):
    # A client whose Redis refuses the connection: the problem says so, nothing more.
    import aiohttp
    from admin_harness import start
    from jobfleet.admin.app import create_app
    from jobfleet.admin.auth import TokenStore

    url = "redis://:s3cret-pass-word@127.0.0.1:1/0"
    async with Client(url) as client:
        app = create_app(client, TokenStore(tokens_file), secrets=("s3cret-pass-word",))
        runner, base = await start(app)
        async with aiohttp.ClientSession() as session:
            resp = await session.get(base + "/api/v1/queues/q", headers=tokens.header("viewer"))
            text = await resp.text()
        await runner.cleanup()
    assert resp.status == 503 and "s3cret" not in text


async def test_jobs_by_state_with_next_link(server):
    ids = await server.client.enqueue_many([{"name": "n", "payload": i} for i in range(5)])
    status, page, _ = await server.call(
        "GET", "/api/v1/queues/q/jobs?state=waiting&limit=3", who="viewer"
    )
    assert status == 200 and [j["id"] for j in page["jobs"]] == ids[:3]
    status, rest, _ = await server.call("GET", page["links"]["next"], who="viewer")
    assert [j["id"] for j in rest["jobs"]] == ids[3:] and rest["next_cursor"] is None


async def test_remove_retry_cancel_clear(server, dead_letters):
    (dead,) = await dead_letters("x")
    status, info, _ = await server.call("POST", f"/api/v1/queues/q/jobs/{dead}/retry")
    assert (status, info["state"], info["attempt"]) == (200, "waiting", 0)
    status, problem, _ = await server.call("POST", f"/api/v1/queues/q/jobs/{dead}/retry")
    assert status == 409 and dead in problem["detail"]
    status, body, _ = await server.call("POST", f"/api/v1/queues/q/jobs/{dead}/cancel")
    assert (status, body) == (200, {"result": "cancelled"})
    other = await server.client.enqueue("n")
    assert (await server.call("DELETE", f"/api/v1/queues/q/jobs/{other}"))[0] == 204
    assert (await server.call("GET", f"/api/v1/queues/q/jobs/{other}"))[0] == 404
    await server.client.enqueue_many([{"name": "n"}] * 3)
    assert (await server.call("POST", "/api/v1/queues/q/clear", json={}))[1] == {"count": 3}


def test_clear_takes_the_states_the_library_clears():
    from typing import get_args

    from jobfleet.admin.models import ClearableState
    from jobfleet.client import CLEARABLE

    assert get_args(ClearableState) == CLEARABLE
