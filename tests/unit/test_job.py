"""Priorities and job specs."""

import pytest
from jobfleet import JobSpec, Priority


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("critical", Priority.CRITICAL),
        ("Batch", Priority.BATCH),
        (1, Priority.HIGH),
        (Priority.LOW, Priority.LOW),
    ],
)
def test_priority_parse(value, expected):
    assert Priority.parse(value) is expected


@pytest.mark.parametrize(
    ("value", "message"), [("urgent", "unknown priority"), (9, "between"), (True, "name or an int")]
)
def test_priority_parse_rejects(value, message):
    with pytest.raises(ValueError, match=message):
        Priority.parse(value)


def test_priorities_are_ordered_most_urgent_first():
    assert sorted(Priority) == [
        Priority.CRITICAL,
        Priority.HIGH,
        Priority.NORMAL,
        Priority.LOW,
        Priority.BATCH,
    ]


def test_spec_rejects_unknown_fields():
    with pytest.raises(ValueError, match="Extra inputs"):
        JobSpec(name="x", colour="red")
