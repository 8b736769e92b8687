"""Worker settings: sources, precedence and the errors a person sees."""

import json

import pytest
from jobfleet import ConfigError, WorkerSettings, load_settings
from jobfleet.settings import check_redis_url, redact_text, redact_url


def test_defaults_without_any_source():
    s = load_settings(env={})
    assert s.queue.name == "default"
    assert s.queue.concurrency == 50
    assert s.redis_url == "redis://127.0.0.1:6379/0"


def test_file_then_env_then_flags(tmp_path):
    cfg = tmp_path / "queue.json"
    cfg.write_text(json.dumps({"queue": {"name": "emails", "concurrency": 5, "max_attempts": 9}}))
    env = {"JOBFLEET_CONFIG": str(cfg), "JOBFLEET_CONCURRENCY": "7"}
    s = load_settings(env=env, overrides={"queue": {"concurrency": 11}})
    assert (s.queue.name, s.queue.concurrency, s.queue.max_attempts) == ("emails", 11, 9)
    assert load_settings(env=env).queue.concurrency == 7


def test_isolation_defaults_to_threads_and_comes_from_the_environment():
    assert load_settings(env={}).queue.isolation == "thread"
    assert load_settings(env={"JOBFLEET_ISOLATION": "process"}).queue.isolation == "process"


def test_processes_default_to_one_and_are_bounded():
    assert load_settings(env={}).processes == 1
    assert load_settings(env={"JOBFLEET_PROCESSES": "4"}).processes == 4
    assert load_settings(env={}, overrides={"processes": 64}).processes == 64
    for bad in (0, 65, -1):
        with pytest.raises(ConfigError, match="processes: must be a whole number from 1 to 64"):
            load_settings(env={}, overrides={"processes": bad})
    with pytest.raises(ConfigError, match="JOBFLEET_PROCESSES: not a valid int"):
        load_settings(env={"JOBFLEET_PROCESSES": "all"})


def test_inline_settings_from_the_operator():
    mounted = WorkerSettings(handlers=["app.jobs"]).model_dump_json()
    s = load_settings(env={"JOBFLEET_SETTINGS": mounted, "JOBFLEET_HTTP_PORT": "9000"})
    assert s.handlers == ["app.jobs"] and s.http_port == 9000


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"JOBFLEET_CONCURRENCY": "many"}, "JOBFLEET_CONCURRENCY: not a valid int"),
        ({"JOBFLEET_CONCURRENCY": "0"}, "queue.concurrency: must be a whole number from 1 to"),
        ({"JOBFLEET_SETTINGS": '{"queue": {"colour": 1}}'}, "queue.colour: unknown setting"),
        ({"JOBFLEET_SETTINGS": "{nope"}, "JOBFLEET_SETTINGS is not valid JSON"),
        ({"JOBFLEET_QUEUE": "bad queue!"}, "invalid queue name"),
        ({"JOBFLEET_REDIS_URL": "http://x"}, "scheme must be redis://"),
        ({"JOBFLEET_CONFIG": "/nonexistent/q.json"}, "cannot read config file"),
        (
            {"JOBFLEET_ISOLATION": "fork"},
            "queue.isolation: Input should be 'thread' or 'process'",
        ),
    ],
)
def test_bad_settings_name_the_problem(env, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_settings(env=env)


@pytest.mark.parametrize(
    "url",
    ["redis//localhost", "redis://:6379", "redis://host:99999/0", "redis://host/abc", "", "x"],
)
def test_malformed_redis_urls(url):
    with pytest.raises(ConfigError, match="malformed Redis URL"):
        check_redis_url(url)


def test_error_messages_never_echo_a_password():
    with pytest.raises(ConfigError) as err:
        check_redis_url("redis://user:s3cret@host:99999/0")
    assert "s3cret" not in str(err.value)
    assert redact_url("redis://user:s3cret@host:6379/0") == "redis://user:***@host:6379/0"
    assert "s3cret" not in redact_url("rediss://:s3cret@host/1")


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        (
            "redis+sentinel://user:s3cret@s1:26379,s2:26379/mymaster/0",
            "redis+sentinel://user:***@s1:26379,s2:26379/mymaster/0",
        ),
        (
            "rediss+sentinel://:s3cret@[::1]:26379,[::2]/mymaster?ssl_cert_reqs=none",
            "rediss+sentinel://:***@[::1]:26379,[::2]/mymaster?ssl_cert_reqs=none",
        ),
        ("redis+sentinel://:s3c@ret@s1,s2/m", "redis+sentinel://:***@s1,s2/m"),
        ("redis+sentinel://s1,s2/m", "redis+sentinel://s1,s2/m"),
    ],
)
def test_sentinel_urls_are_redacted(url, redacted):
    assert redact_url(url) == redacted
    assert redact_text(f"cannot reach {url}: refused") == f"cannot reach {redacted}: refused"


def test_redact_text_hides_every_password_in_a_message():
    text = redact_text(
        "redis://:one@h/0 then redis+sentinel://u:tw@o@s1,s2/m and rediss://:three@h2"
    )
    assert not any(p in text for p in ("one", "tw@o", "three")), text
    assert "s1,s2/m" in text


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis://h:6379/0?sokcet_timeout=1", "unknown option 'sokcet_timeout' in the query"),
        ("unix:///run/redis.sock?colour=blue", "unknown option 'colour' in the query"),
        ("redis://h:6379?db=x", "Invalid value for 'db' in the query"),
        ("rediss://h:6380/0?socket_timeout=x", "Invalid value for 'socket_timeout' in the query"),
        (
            "redis://h/0?health_check_interval=soon",
            "Invalid value for 'health_check_interval' in the query",
        ),
    ],
)
def test_query_options_are_redis_pys_with_valid_values(url, message):
    with pytest.raises(ConfigError) as err:
        check_redis_url(url)
    assert str(err.value) == f"malformed Redis URL: {message}"  # never the value


def test_unknown_options_that_could_be_a_password_are_not_quoted():
    with pytest.raises(ConfigError) as err:
        check_redis_url("redis://h/0?s3cret%3D=1")
    assert "s3cret" not in str(err.value)
    assert "unknown option with that name in the query" in str(err.value)


@pytest.mark.parametrize(
    "url",
    [
        "redis://h:6379/0?socket_timeout=2.5&health_check_interval=10",
        "rediss://h:6380/0?ssl_cert_reqs=none",
        "unix:///run/redis.sock?db=3",
        "redis://h:6379?db=2&client_name=app",
    ],
)
def test_known_query_options_pass(url):
    assert check_redis_url(url) == url
