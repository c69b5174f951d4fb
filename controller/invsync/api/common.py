"""Types shared by the four kinds: references, selectors, conditions, durations, metadata."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

GROUP = "invsync.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# Go's time.ParseDuration grammar, restricted to the units an operator interval needs.
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> timedelta:
    """Parse a Kubernetes-style duration such as ``5m`` or ``1h30m``."""
    if not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(f"invalid duration {text!r}: expected e.g. 30s, 5m, 1h30m")
    return timedelta(seconds=sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text)))


def _check_duration(text: str) -> str:
    parse_duration(text)
    return text


Duration = Annotated[
    str,
    AfterValidator(_check_duration),
    # the pattern reaches the CRD only this way: pydantic drops a Field constraint after a validator
    Field(json_schema_extra={"pattern": DURATION_PATTERN, "x-invsync-duration": True}),
]
Percent = Annotated[int, Field(ge=0, le=100)]
NonNegative = Annotated[int, Field(ge=0)]
Name = Annotated[str, Field(min_length=1, max_length=253)]


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
        default_factory=list, description="Requirements that must all hold."
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


def cel(*rules: tuple[str, str]) -> dict[str, Any]:
    """CEL validations (rule, message) for a schema, checked by the API server at admission."""
    return {"x-kubernetes-validations": [{"rule": r, "message": m} for r, m in rules]}
