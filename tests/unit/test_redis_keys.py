"""The one-pass key matching of Redis (pure): a key parsed once, its ids looked up among the wanted."""

from __future__ import annotations

import pytest

from include.retention.policy import Policy, RedisTarget
from include.retention.selections import SubjectSelection, TenantSelection
from include.retention.stores.redis_keys import KeyClaims


def claims(policy: Policy, *selections: object) -> KeyClaims:
    target = policy.target("agent_info.agent_state")
    assert isinstance(target, RedisTarget) and target.key is not None
    return KeyClaims(target.key, list(selections), target.qualified_name)  # type: ignore[arg-type]


@pytest.mark.parametrize("as_bytes", [pytest.param(True, id="bytes"), pytest.param(False, id="str")])
def test_tenants_sharing_a_prefix_and_a_subject_in_one_lookup(policy: Policy, as_bytes: bool) -> None:
    found = claims(policy, TenantSelection("12"), SubjectSelection("123", "agent", "a1", subject_hash="h"),
                   SubjectSelection("12", "agent", "a1", subject_hash="h2"))
    keys = {"cc:12:agent:a1:profile": (0, 2), "cc:12:agent:a10:profile": (0,), "cc:123:agent:a1:x": (1,),
            "cc:123:agent:a10:x": (), "cc:1234:agent:a1:x": (), "cc:12:agent:a1": (), "cc:12:queue:q": (),
            "cc:12:agent:A1:x": (), "cc:12:session:a1:s": ()}
    for key, owners in keys.items():
        assert found.owners(key.encode() if as_bytes else key) == owners, key
    counts = [0, 0, 0]
    found.count_into([k.encode() if as_bytes else k for k in keys], counts)
    assert counts == [2, 1, 1]
    assert sorted(i for i, _k in found.claim(list(keys))) == [0, 0, 1]  # a1 of 12 goes with its tenant
    assert found.pattern == "cc:12*"


def test_the_scan_is_narrowed_to_what_every_selection_shares(policy: Policy) -> None:
    assert claims(policy, TenantSelection("12")).pattern == "cc:12:agent:*"
    assert claims(policy, SubjectSelection("12", "agent", "a1", subject_hash="h")).pattern == "cc:12:agent:a1:*"
    assert claims(policy, TenantSelection("12"), TenantSelection("7")).pattern == "cc:*"
    assert claims(policy).pattern == "cc:*"
