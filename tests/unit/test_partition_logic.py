"""Partitioned queues, the pure parts: names, placement, the bound of K, a worker's tour,
the logical queue's stats, the rate-limit share."""

import json
import zlib

import pytest
from jobfleet import ConfigError, load_settings
from jobfleet.client import Client
from jobfleet.engine import flow_json
from jobfleet.keys import (
    QueueKeys,
    check_engine_name,
    logical_queue,
    partition_name,
    partition_names,
    partitions_key,
)
from jobfleet.partitions import STAY, Tour, home_of, merge_stats, place, spread
from jobfleet.settings import RateLimit


def test_partition_names_and_keys():
    assert partition_name("emails", 3) == "emails#3"
    assert partition_names("emails", 1) == ["emails"]  # K = 1: the queue itself, same keys
    assert partition_names("emails", 3) == ["emails#0", "emails#1", "emails#2"]
    assert QueueKeys("emails#3").prefix == "jf:{emails#3}:"
    assert partitions_key("emails") == "jf:{emails}:partitions"
    assert logical_queue("emails#3") == logical_queue("emails") == "emails"
    assert check_engine_name("emails#255") == "emails#255"
    for bad in ("emails#256", "emails#", "emails#-1", "emails#01", "#1", "a#1#2"):
        with pytest.raises(ConfigError):
            check_engine_name(bad)
    for index in (-1, 256, True, "1"):
        with pytest.raises(ConfigError, match="partition: must be a whole number from 0 to 255"):
            partition_name("emails", index)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="invalid queue name"):
        Client(queue="emails#1")  # user queue names never hold '#'


def test_placement_is_crc32_modulo_k_and_stable():
    assert place("customer-7", 4) == zlib.crc32(b"customer-7") % 4
    assert place("customer-7", 4) == place("customer-7", 4)
    assert place("é", 7) == zlib.crc32("é".encode()) % 7
    assert {place(f"k{n}", 8) for n in range(200)} == set(range(8))  # spreads
    assert {home_of(f"host:{n}:x", 4) for n in range(50)} == set(range(4))
    assert spread([2, 0, 2, 1]) == {2: [0, 2], 0: [1], 1: [3]}


def test_partitions_are_bounded_before_anything_is_written():
    assert load_settings(env={}).queue.partitions == 1
    assert load_settings(env={"JOBFLEET_PARTITIONS": "8"}).queue.partitions == 8
    assert load_settings(env={}, overrides={"queue": {"partitions": 256}}).queue.partitions == 256
    for bad in (0, 257, -1, float("inf"), float("nan")):
        with pytest.raises(
            ConfigError, match=r"partitions: must be a (whole|finite) number from 1 to 256"
        ):
            load_settings(env={}, overrides={"queue": {"partitions": bad}})
    for bad in ("x", None, 2.5):
        with pytest.raises(ConfigError, match="partitions"):
            load_settings(env={}, overrides={"queue": {"partitions": bad}})
    with pytest.raises(ConfigError, match="JOBFLEET_PARTITIONS: not a valid int"):
        load_settings(env={"JOBFLEET_PARTITIONS": "many"})


def test_a_shared_rate_limit_must_leave_each_partition_one_start():
    limit = {"max": 3, "period": 1.0}
    with pytest.raises(ConfigError, match=r"rate_limit.max \(3\) must be at least partitions"):
        load_settings(env={}, overrides={"queue": {"partitions": 4, "rate_limit": limit}})
    flow = json.loads(flow_json(RateLimit(max=10, period=1.0), None, partitions=4))
    assert flow["rl"] == {"max": 10, "period": 1000, "share": 2}  # keyed windows: the whole 10
    assert "share" not in json.loads(flow_json(RateLimit(max=10, period=1.0), None))["rl"]


def test_a_tour_stays_home_while_it_fills_then_visits_every_partition():
    tour = Tour(count=5, home=2)
    order = []
    for _ in range(STAY):
        order.append(tour.at)
        tour.claimed(10, 10)  # full claims: stay, up to STAY in a row
    assert order == [2] * STAY and tour.at == 3  # ... then the next one, even with work at home
    seen = []
    while not tour.dry:
        seen.append(tour.at)
        tour.claimed(0, 10)  # nothing anywhere
    assert seen == [3, 4, 0, 1, 2]  # every target once, then dry
    tour.rest()
    assert (tour.at, tour.dry) == (2, False)
    tour.claimed(3, 10)  # a short claim moves on without counting as empty
    tour.claimed(0, 0)  # a claim for none (acks only) changes nothing
    assert (tour.at, tour.dry) == (3, False)


def test_the_logical_stats_sum_the_partitions():
    a = {
        "time_ms": "5",
        "waiting": "2",
        "oldest_ms:2": "700",
        "paused": "1",
        "workers": "2",
        "window_ms": "60000",
        "group:t1": "3",
        "cb:*:state": "closed",
        "cb:*:trips": "1",
    }
    b = {
        "time_ms": "6",
        "waiting": "3",
        "oldest_ms:2": "900",
        "paused": "0",
        "workers": "3",
        "window_ms": "60000",
        "group:t1": "1",
        "group:t2": "9",
        "cb:*:state": "open",
        "cb:*:trips": "2",
    }
    merged = merge_stats([a, b], top_groups=1)
    assert merged["waiting"] == "5" and merged["oldest_ms:2"] == "900"
    assert merged["time_ms"] == "6" and merged["workers"] == "3"
    assert merged["paused"] == "0"  # paused only when every partition is
    assert merged["window_ms"] == "60000"
    assert merged["cb:*:state"] == "open" and merged["cb:*:trips"] == "3"
    assert "group:t1" not in merged and merged["group:t2"] == "9"  # summed, then the top one
    assert merge_stats([{**a, "paused": "1"}, {**b, "paused": "1"}], 10)["paused"] == "1"
    assert merge_stats([a], 10) is a


def test_a_bad_partition_key_is_refused_before_anything_is_sent():
    client = Client("redis://127.0.0.1:1/0", queue="q")  # nothing listens: nothing is sent
    assert client.encode({"name": "x", "partition_key": "acct-1"}).partition_key == "acct-1"
    assert client.encode({"name": "x"}).options() == ""  # not an option of the script
    for bad in ("", "a\x1fb", "k" * 201, 7):
        with pytest.raises(ConfigError, match="partition_key"):
            client.encode({"name": "x", "partition_key": bad})
