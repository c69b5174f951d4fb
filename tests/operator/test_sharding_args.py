"""`invsync run --statefulset NS/NAME --replica POD`: what it accepts, and the shard a replica is
(docs/operations.md, "Sharding"). The coordination itself runs against the API server in
tests/e2e/test_sharding.py."""

from __future__ import annotations

import re

import pytest

from invsync.errors import InputError
from invsync.operator.runtime import Shard, stable_shard
from invsync.operator.sharding import StatefulSetRef, claim_name


def test_a_replica_is_the_ordinal_of_its_pod_name() -> None:
    ref = StatefulSetRef.parse("invsync-system/invsync", "invsync-12")
    assert (ref.namespace, ref.name, ref.ordinal) == ("invsync-system", "invsync", 12)


@pytest.mark.parametrize(
    ("statefulset", "replica", "named"),
    [
        ("invsync", "invsync-0", "--statefulset 'invsync': expected NAMESPACE/NAME"),
        ("a/b/c", "b-0", "--statefulset 'a/b/c'"),
        ("invsync-system/invsync", "", "--replica '': expected a pod name of StatefulSet invsync"),
        ("invsync-system/invsync", "other-0", "--replica 'other-0'"),
        ("invsync-system/invsync", "invsync-x", "in a pod, set it from metadata.name"),
    ],
)
def test_bad_arguments_name_the_flag(statefulset: str, replica: str, named: str) -> None:
    with pytest.raises(InputError, match=re.escape(named)):
        StatefulSetRef.parse(statefulset, replica)


def test_a_replica_past_the_count_owns_nothing_and_the_others_split_everything() -> None:
    rules = [("shop", f"rule-{i}") for i in range(60)]
    assert not any(Shard(2, 2).owns(*r) for r in rules)
    assert not any(Shard(0, 0).owns(*r) for r in rules)  # before the StatefulSet was read
    for r in rules:
        assert [i for i in range(3) if Shard(i, 3).owns(*r)] == [stable_shard(*r, 3)]


def test_a_claim_name_is_a_valid_lease_name_for_any_rule() -> None:
    long = ("n" * 63, "r" * 253)
    names = {claim_name(*long), claim_name("shop", "a"), claim_name("shop", "b"), claim_name("shopa", "")}
    assert len(names) == 4
    assert all(re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", n) and len(n) <= 63 for n in names)
