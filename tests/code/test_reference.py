"""Reference snapshots: rows without an id or with a repeated id are quarantined with a reason."""

from __future__ import annotations

import pandas as pd

from jobs.data.reference import REFERENCES, split_reference


def test_split_reference_quarantines_missing_and_duplicate_ids():
    frame = pd.DataFrame(
        {
            "customer_id": ["1", " 2 ", None, "1", "", "3"],
            "region": ["north-east", "south-west", "north-west", "south-east", "north-east", None],
        }
    )
    good, bad = split_reference(frame, REFERENCES["customers"])
    assert list(good["customer_id"]) == ["1", "2", "3"]  # trimmed, first copy kept
    assert [list(r) for r in bad["reasons"]] == [
        ["customer_id is missing"],
        ["duplicate customer_id in file"],
        ["customer_id is missing"],
    ]
    assert len(good) + len(bad) == len(frame)
