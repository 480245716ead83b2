"""Feature governance: every registry feature carries an owner, a description and a personal-data flag."""

from __future__ import annotations

import dataclasses

from jobs.features import registry
from jobs.features.registry import FEATURES, Feature


def test_every_feature_has_an_owner_a_description_and_a_personal_data_flag():
    missing = {
        f.name: [k for k in ("owner", "description") if not getattr(f, k).strip()]
        + ([] if isinstance(f.pii, bool) else ["pii"])
        for f in FEATURES
    }
    assert {k: v for k, v in missing.items() if v} == {}
    assert {f.entity for f in FEATURES} <= set(registry.OWNERS) & set(registry.PERSONAL_DATA)


def test_a_feature_without_an_owner_is_caught_and_governance_does_not_change_the_feature_set_version():
    orphan = dataclasses.replace(FEATURES[0], entity="merchant", owner="", pii=None)
    governed = registry._governed(orphan)
    assert governed.owner == "" and governed.pii is None  # no default for an unknown entity: the test above fails
    before = registry.feature_set_version()
    relabelled = tuple(dataclasses.replace(f, owner="someone else", pii=not f.pii) for f in FEATURES)
    original = registry.FEATURES
    try:
        registry.FEATURES = relabelled
        assert registry.feature_set_version() == before  # an owner change does not change a value
        registry.FEATURES = (*relabelled[:-1], dataclasses.replace(relabelled[-1], window_days=99))
        assert registry.feature_set_version() != before
    finally:
        registry.FEATURES = original
    assert isinstance(FEATURES[0], Feature)
