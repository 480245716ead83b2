"""Delta maintenance's plan without a JVM: which versions are pinned, and how long VACUUM must keep files."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from jobs.governance.lakehouse import pins_of, retention_hours


def _mv(version: int, archived: bool = False, **pins: int):
    tags = {f"delta_version.{table.replace('__', '.')}": str(v) for table, v in pins.items()}
    if archived:
        tags["archived"] = "true"
    return SimpleNamespace(version=version, tags={**tags, "gate.decision": "passed"})


def test_pins_come_from_every_registered_version_but_the_archived():
    versions = [
        _mv(1, features__tx=5, marts__fct=3),
        _mv(2, features__tx=5, marts__fct=4),
        _mv(3, archived=True, features__tx=2, marts__fct=1),  # retired: its data may go
    ]
    assert pins_of(versions) == {"features.tx": {5: ["1", "2"]}, "marts.fct": {3: ["1"], 4: ["2"]}}
    assert pins_of([_mv(4)]) == {}  # a version without lineage tags pins nothing


@pytest.mark.parametrize(
    ("configured", "pinned_hours_ago", "margin_s", "expected"),
    [
        (168, None, 600, 168),  # nothing pinned: the configured retention
        (168, 24, 600, 168),  # the pin is inside the configured horizon already
        (168, 500, 600, 501),  # an older pin stretches the horizon back to it, plus the margin, in whole hours
        (0, 2, 0, 2),  # retention 0 still keeps a version pinned two hours ago
        (0, 0.01, 0, 1),  # ... and one pinned 36 s ago: Delta rounds hours, so round up
        (0, None, 0, 0),
    ],
)
def test_vacuum_retention_reaches_back_to_the_oldest_pinned_commit(configured, pinned_hours_ago, margin_s, expected):
    now_ms = 1_800_000_000_000
    pinned_at = None if pinned_hours_ago is None else now_ms - pinned_hours_ago * 3_600_000
    assert retention_hours(configured, pinned_at, margin_s, now_ms) == expected
