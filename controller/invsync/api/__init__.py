"""The invsync API: pydantic models of the four kinds, from which the CRDs are generated."""

from .common import API_VERSION, GROUP, VERSION, Condition, LabelSelector, ObjectMeta, parse_duration
from .kinds import (
    KINDS,
    InventorySource,
    Override,
    Store,
    SyncRule,
    SyncRuleSpec,
    SyncRuleStatus,
    Warehouse,
)

__all__ = [
    "API_VERSION",
    "GROUP",
    "KINDS",
    "VERSION",
    "Condition",
    "InventorySource",
    "LabelSelector",
    "ObjectMeta",
    "Override",
    "Store",
    "SyncRule",
    "SyncRuleSpec",
    "SyncRuleStatus",
    "Warehouse",
    "parse_duration",
]
