"""Kubernetes condition conventions, as pure functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from invsync.operator.conditions import RECONCILING, Cond, merge, with_condition
from invsync.operator.reasons import Reason

T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)


def test_transition_time_moves_only_when_the_status_changes() -> None:
    first = merge(None, [Cond("Ready", "True", "Synced", "3 of 3")], generation=1, now=T0)
    same = merge(first, [Cond("Ready", "True", "Synced", "4 of 4")], generation=2, now=T1)
    assert same[0]["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    assert same[0]["message"] == "4 of 4" and same[0]["observedGeneration"] == 2
    flipped = merge(same, [Cond("Ready", "False", "SourceUnavailable", "down")], generation=2, now=T1)
    assert flipped[0]["lastTransitionTime"] == "2026-01-01T00:05:00Z"


def test_abnormal_true_conditions_exist_only_while_true() -> None:
    conds = merge(
        None,
        [
            Cond("Ready", "True", "Synced"),
            Cond("Stalled", "True", "SafetyHold"),
            Cond("Conflict", "False", "None"),
        ],
        generation=1,
        now=T0,
    )
    assert [c["type"] for c in conds] == ["Ready", "Stalled"]
    later = merge(conds, [Cond("Ready", "True", "Synced")], generation=1, now=T1)
    assert [c["type"] for c in later] == ["Ready"]


def test_with_condition_keeps_the_others_untouched() -> None:
    base = merge(None, [Cond("Ready", "True", "Synced", "ok")], generation=3, now=T0)
    progress = with_condition(base, Cond(RECONCILING, "True", "Pushing", "pushed 5/10"), generation=4, now=T1)
    assert progress[0] == base[0]
    assert progress[1]["type"] == RECONCILING and progress[1]["message"] == "pushed 5/10"
    assert progress[1]["observedGeneration"] == 4


def test_docs_conditions_names_every_reason_the_operator_writes() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "conditions.md").read_text()
    assert [r.value for r in Reason if f"`{r.value}`" not in doc] == []
