"""Types shared by the four kinds: references, selectors, conditions, durations, metadata."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

GROUP = "invsync.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# Go's time.ParseDuration grammar, restricted to the units an operator interval needs, with at most
# 5 digits of hours, 7 of minutes and 9 of seconds per part and 32 characters in all: every string the
# pattern admits stays far below Go's limit (about 2,562,047h), so the API server's CEL `duration()`
# can bound it without overflowing (docs/operations.md, "Bounds on every duration and rate").
_FRACTION = r"([.][0-9]{1,9})?"  # [.], not \., so CEL and Python read the same pattern
DURATION_PATTERN = rf"^([0-9]{{1,5}}{_FRACTION}h|[0-9]{{1,7}}{_FRACTION}m|[0-9]{{1,9}}{_FRACTION}(s|ms))+$"
DURATION_MAX_LENGTH = 32
MAX_DURATION = timedelta(days=30)  # the largest bound of any duration field
_DURATION_GRAMMAR = re.compile(r"([0-9]+([.][0-9]+)?(ms|s|m|h))+")  # before the digit limits
_DURATION_PART = re.compile(r"([0-9]+(?:[.][0-9]+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> timedelta:
    """Parse a Kubernetes-style duration such as ``5m`` or ``1h30m``, at most MAX_DURATION.

    Raises ValueError only, naming the value: the operator reads durations from objects the API
    server admitted before these bounds existed, and one bad value must not stop other rules."""
    shown = repr(text if len(text) <= 40 else text[:37] + "...")
    if not _DURATION_GRAMMAR.fullmatch(text):
        raise ValueError(f"invalid duration {shown}: expected e.g. 30s, 5m, 1h30m")
    # float() of any digit string is finite or inf, never an exception; inf fails the bound
    seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"duration {shown} is longer than {_show(MAX_DURATION)}")
    if len(text) > DURATION_MAX_LENGTH or not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(
            f"invalid duration {shown}: at most {DURATION_MAX_LENGTH} characters and 5 digits of hours, "
            "7 of minutes or 9 of seconds per part"
        )
    return timedelta(seconds=seconds)


def _show(value: timedelta) -> str:
    """A bound in the duration syntax, with days for readers when it is a whole number of them."""
    seconds = int(value.total_seconds())
    if seconds > 86400 and seconds % 86400 == 0:
        return f"{seconds // 3600}h ({seconds // 86400} days)"
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"


@dataclass(frozen=True)
class DurationBounds:
    """``Annotated[str, DurationBounds("1s", "720h")]``: a duration field admitted within the bounds by
    pydantic (`invsync validate`, the operator) and by the API server (the pattern, then a CEL rule),
    both refusing with the same message."""

    minimum: str
    maximum: str

    @property
    def message(self) -> str:
        return (
            f"must be between {_show(parse_duration(self.minimum))} and {_show(parse_duration(self.maximum))}"
        )

    def check(self, text: str) -> str:
        try:
            value = parse_duration(text)
        except ValueError as exc:
            raise PydanticCustomError("duration", str(exc)) from None
        if not parse_duration(self.minimum) <= value <= parse_duration(self.maximum):
            raise PydanticCustomError("duration_bounds", self.message)
        return text

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        # CEL reads the bound only where the pattern held: duration() of anything else is an error.
        rule = (
            f"!self.matches('{DURATION_PATTERN}') || "
            f"(duration(self) >= duration('{self.minimum}') && duration(self) <= duration('{self.maximum}'))"
        )
        return {
            **handler(schema),
            "pattern": DURATION_PATTERN,
            "maxLength": DURATION_MAX_LENGTH,
            **cel((rule, self.message)),
        }


Percent = Annotated[int, Field(ge=0, le=100)]
NonNegative = Annotated[int, Field(ge=0)]
Name = Annotated[str, Field(min_length=1, max_length=253)]


def cel(*rules: tuple[str, str] | tuple[str, str, str]) -> dict[str, Any]:
    """CEL validations (rule, message[, fieldPath]) for a schema, checked by the API server at
    admission; fieldPath (e.g. ``.lowStock.preferredStore``) makes the error name that field."""
    return {
        "x-kubernetes-validations": [
            {"rule": r[0], "message": r[1], **({"fieldPath": r[2]} if len(r) == 3 else {})} for r in rules
        ]
    }


class Model(BaseModel):
    """Base of every API object: camelCase on the wire, unknown fields are errors."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )


class LocalObjectReference(Model):
    """A reference to an object in the same namespace."""

    name: Name = Field(description="Name of the object, in the referring resource's namespace.")


class LabelSelectorRequirement(Model):
    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "self.operator in ['In', 'NotIn'] ? (has(self.values) && size(self.values) > 0) "
                ": (!has(self.values) || size(self.values) == 0)",
                "required for operator In and NotIn, empty for Exists and DoesNotExist",
                ".values",
            )
        )
    )

    key: str = Field(description="The label key the selector applies to.")
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = Field(
        description="How the key relates to the values."
    )
    values: list[str] = Field(
        default_factory=list,
        description="Values for In and NotIn; must be empty for Exists and DoesNotExist.",
    )


class LabelSelector(Model):
    """A standard Kubernetes label selector; an empty selector matches everything."""

    match_labels: dict[str, str] = Field(
        default_factory=dict, description="Labels that must all be present with these values."
    )
    match_expressions: list[LabelSelectorRequirement] = Field(
        default_factory=list, max_length=64, description="Requirements that must all hold."
    )

    def matches(self, labels: dict[str, str]) -> bool:
        if any(labels.get(k) != v for k, v in self.match_labels.items()):
            return False
        for req in self.match_expressions:
            present = req.key in labels
            if req.operator == "In" and (not present or labels[req.key] not in req.values):
                return False
            if req.operator == "NotIn" and present and labels[req.key] in req.values:
                return False
            if req.operator == "Exists" and not present:
                return False
            if req.operator == "DoesNotExist" and present:
                return False
        return True


class Condition(Model):
    """metav1.Condition."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True)

    type: str = Field(description="Type of condition in CamelCase, e.g. Ready.")
    status: Literal["True", "False", "Unknown"] = Field(description="Status of the condition.")
    observed_generation: int | None = Field(
        default=None, description="The .metadata.generation the condition was set for."
    )
    last_transition_time: str | None = Field(
        default=None,
        description="When the condition last changed status.",
        json_schema_extra={"format": "date-time"},
    )
    reason: str = Field(default="", description="Programmatic CamelCase reason for the last transition.")
    message: str = Field(default="", description="Human-readable detail about the last transition.")


Conditions = Annotated[
    list[Condition],
    Field(
        default_factory=list,
        description="Current state of the resource (Kubernetes condition conventions).",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    ),
]


class ObjectMeta(BaseModel):
    """The subset of metav1.ObjectMeta invsync reads; everything else is kept untouched."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow", frozen=True)

    name: Name
    namespace: str = "default"
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    creation_timestamp: str | None = None
    generation: int | None = None
    uid: str | None = None


class Resource(Model):
    """Envelope shared by the four kinds."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True)

    api_version: Literal["invsync.dev/v1alpha1"] = Field(alias="apiVersion")
    kind: str
    metadata: ObjectMeta

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def namespace(self) -> str:
        return self.metadata.namespace
