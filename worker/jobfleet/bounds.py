"""The range of every numeric option, checked before anything is written.

pydantic accepts inf and nan for a float unless something bounds it, and the engine turns
seconds into integer milliseconds (`int(inf)` raises OverflowError; a huge value is refused
by Redis halfway through an enqueue). So each numeric field carries `between(lo, hi)`: one
check, finite and in range, whose message names the range. The bounds themselves live with
their fields (or here, when several fields share one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import (
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    TypeAdapter,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

from .errors import ConfigError

DAY = 86_400
# Ten years: anything longer is a typo, and its milliseconds stay exact in a Lua number.
MAX_DURATION = 10 * 365 * DAY
MAX_UNIX_TIME = 253_402_300_799  # 9999-12-31T23:59:59Z, as far as datetime goes
# The engine's resolution: a positive duration shorter than this would become 0 ms, which
# Redis refuses as a TTL and the worker reads as "no timeout".
MILLISECOND = 0.001
MIB = 1024 * 1024


def _text(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def describe(lo: float, hi: float, *, above: bool = False) -> str:
    """The allowed range, as error messages state it."""
    if above:
        return f"above {_text(lo)} and at most {_text(hi)}"
    return f"from {_text(lo)} to {_text(hi)}"


@dataclass(frozen=True)
class Between:
    """A field check: finite and within [lo, hi] (or (lo, hi] with `above`).

    Its JSON Schema states the same bounds (`minimum`/`exclusiveMinimum`, `maximum`), so that
    a schema generated from a model (the Queue CRD) enforces exactly what the model does.
    An optional field may carry it outside the `| None`: None passes unchecked.
    """

    lo: float
    hi: float
    above: bool = False

    def check(self, value: Any, parse: ValidatorFunctionWrapHandler) -> Any:
        if value is None:
            return parse(value)
        # Before parsing too: an int field would refuse inf without naming its range.
        finite = not isinstance(value, float) or math.isfinite(value)
        number = parse(value) if finite else value
        low_ok = finite and (number > self.lo if self.above else number >= self.lo)
        if not (low_ok and number <= self.hi):
            kind = "a whole number" if isinstance(number, int) else "a finite number"
            raise ValueError(f"must be {kind} {describe(self.lo, self.hi, above=self.above)}")
        return number

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return WrapValidator(self.check).__get_pydantic_core_schema__(source, handler)

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        out = handler(schema)
        # On an optional field, the bounds are the number's: `anyOf: [{number...}, {null}]`.
        branches = [b for b in out.get("anyOf", ()) if b.get("type") != "null"]
        target = branches[0] if len(branches) == 1 else out
        target["exclusiveMinimum" if self.above else "minimum"] = self.lo
        target["maximum"] = self.hi
        return out


def between(lo: float, hi: float, *, above: bool = False) -> Between:
    """A field check: finite and within [lo, hi] (or (lo, hi] with `above`)."""
    return Between(lo, hi, above)


# Bounds that several fields share.
Seconds = Annotated[float, between(0, MAX_DURATION)]
PositiveSeconds = Annotated[float, between(MILLISECOND, MAX_DURATION)]
UnixTime = Annotated[float, between(0, MAX_UNIX_TIME)]
# A queue's or a handler's time limit per attempt, in seconds (not milliseconds: above 0 is
# enough, and the Queue resource allows any positive timeout).
AttemptTimeout = Annotated[float, between(0, MAX_DURATION, above=True)]
PayloadBytes = Annotated[int, between(64, 512 * MIB)]
# Worker processes of one pod (`--processes`): the settings' field and the Queue's share it.
# 64 is more cores than a pod is given; each process is a whole interpreter.
MAX_PROCESSES = 64
Processes = Annotated[int, between(1, MAX_PROCESSES)]
# Partitions of one logical queue (docs/partitions.md): each is a queue with its own slot.
MAX_PARTITIONS = 256
Partitions = Annotated[int, between(1, MAX_PARTITIONS)]
GroupConcurrency = Annotated[int, between(1, 100_000)]  # jobs of one group in flight, fleet-wide
GroupWeight = Annotated[int, between(1, 1000)]  # a group's share in the round robin


def check(name: str, kind: Any, value: Any) -> Any:
    """`value` validated as the annotated type `kind`, or ConfigError naming `name`."""
    try:
        return TypeAdapter(kind).validate_python(value)
    except ValidationError as exc:
        message = exc.errors()[0]["msg"].removeprefix("Value error, ")
    # Raised outside the handler: the ValidationError quotes the value, so it must not
    # become this error's __context__.
    raise ConfigError(f"{name}: {message}")
