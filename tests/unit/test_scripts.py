"""Each script carries exactly the Lua helpers it reaches (jobfleet.scripts)."""

import re

import pytest
from jobfleet import scripts

DEFINED = re.compile(r"^local function (\w+)\(", re.M)


def helpers_of(library: str) -> list[str]:
    return [name for name, _ in scripts._pieces(scripts._read(library)) if name]


ALL_HELPERS = {h for lib in scripts.LIBRARIES for h in helpers_of(lib)}


@pytest.mark.parametrize("name", scripts.NAMES)
def test_every_helper_a_script_calls_is_defined_before_use(name):
    src = scripts.source(name)
    code = re.sub(r"--.*$", "", src, flags=re.M)
    defined_at = {m.group(1): m.start() for m in DEFINED.finditer(src)}
    for helper in ALL_HELPERS:
        calls = [m.start() for m in re.finditer(rf"\b{helper}\(", code)]
        if calls:
            assert helper in defined_at, f"{name} calls {helper} but does not carry it"
    # Each helper appears once, in its library's order (a helper sees only those above it).
    assert len(defined_at) == len(DEFINED.findall(src))


@pytest.mark.parametrize("name", scripts.NAMES)
def test_a_script_carries_no_helper_it_never_reaches(name):
    src = scripts.source(name)
    code = re.sub(r"--.*$", "", src, flags=re.M)
    for helper in DEFINED.findall(src):
        uses = len(re.findall(rf"\b{helper}\b", code))
        assert uses >= 2, f"{name} carries {helper} but never calls it"


def test_enqueue_is_lean_and_claim_has_the_engine_loop():
    plain = {"now_ms", "job_key", "wake", "first_score", "wake_if_sooner"}
    assert set(DEFINED.findall(scripts.source("enqueue"))) <= plain | {"grouped_add"}
    # A batch with a grouped job (issue #14) goes to its own build of the script, which alone
    # carries group_add and what it calls.
    assert set(DEFINED.findall(scripts.source("enqueue_grouped"))) <= plain | {
        "group_set",
        "group_ring",
        "group_weight",
        "ring_join",
        "ring_member",
        "group_reseat",
        "backlog_add",
        "group_add",
        "grouped_add",
    }
    assert "local GROUPS = true" in scripts.source("enqueue_grouped")
    assert "local GROUPS = false" in scripts.source("enqueue")
    assert {"promote", "recover", "trim", "admit"} <= set(DEFINED.findall(scripts.source("claim")))


def test_the_fixed_part_of_every_library_is_kept():
    src = scripts.source("obliterate")
    assert "local K_READY" in src and "local BAND" in src


def test_a_helper_without_its_end_is_refused():
    with pytest.raises(ValueError, match="'broken' has no closing 'end'"):
        scripts._pieces("local function broken(x)\n  return x\n  end")


def test_comments_above_a_helper_travel_with_it():
    pieces = scripts._pieces("local A = 1\n-- why f\nlocal function f()\nend\nlocal B = 2")
    assert pieces == [
        (None, "local A = 1"),
        ("f", "-- why f\nlocal function f()\nend"),
        (None, "local B = 2"),
    ]


def test_unknown_script():
    with pytest.raises(KeyError, match="no Lua script named 'nope'"):
        scripts.source("nope")
