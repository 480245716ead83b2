"""The scoring API's request and response bodies (pydantic), built from the landing contract's rules.

A transaction is what a landing file's row holds (``jobs/data/suites/transactions.json``): the id
patterns and the amount range are read from that suite (:func:`jobs.data.contract.record_rules`)
and the timestamp format is ingestion's, so the API refuses exactly what ingestion would quarantine
on its own (uniqueness across files and the file's day are batch rules, not a request's). On top,
an API must refuse what a CSV cannot carry: NaN and infinity, booleans or strings for numbers,
unknown fields.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from jobs.config import get_settings
from jobs.data.contract import TIMESTAMP_FORMAT, record_rules

RULES = record_rules("transactions")


def _bound(value):
    """A suite bound: a number, or ``$parameter`` resolved from the settings (as ingestion does)."""
    if isinstance(value, str) and value.startswith("$"):
        return getattr(get_settings().data, value[1:])
    return value


AMOUNT_MIN, AMOUNT_MAX = (_bound(v) for v in RULES.ranges["tx_amount"])


EARLIEST, LATEST = datetime(1970, 1, 1), datetime(9999, 1, 1)  # the feature windows reach back 37 days


def _timestamp(value: str) -> str:
    try:
        t = datetime.strptime(value, TIMESTAMP_FORMAT)
    except ValueError:
        raise ValueError(f"not a time in the format YYYY-MM-DD HH:MM:SS (UTC): {value!r}") from None
    if not EARLIEST <= t < LATEST:
        raise ValueError(f"a time between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d} is expected, not {value!r}")
    return value


def _id(column: str):
    return Annotated[
        str,
        Field(
            pattern=RULES.patterns[column],
            description=f"{column}: letters, digits and _.:- only, 1 to 64 characters (the landing contract)",
            examples=[{"transaction_id": "tx-000001", "customer_id": "C1042", "terminal_id": "T0077"}[column]],
        ),
    ]


class Transaction(BaseModel):
    """One card transaction as the card network sends it: the landing contract's five fields."""

    model_config = ConfigDict(extra="forbid", strict=True)

    transaction_id: _id("transaction_id")
    tx_datetime: Annotated[
        str,
        Field(
            pattern=r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01]) ([01]\d|2[0-3]):[0-5]\d:[0-5]\d$",
            description="time of the transaction, UTC, YYYY-MM-DD HH:MM:SS",
            examples=["2026-03-01 14:05:09"],
        ),
        AfterValidator(_timestamp),
    ]
    customer_id: _id("customer_id")
    terminal_id: _id("terminal_id")
    tx_amount: Annotated[
        float,
        Field(
            ge=AMOUNT_MIN,
            le=AMOUNT_MAX,
            allow_inf_nan=False,
            description=f"amount, a finite number from {AMOUNT_MIN} to {AMOUNT_MAX} (PIPELINE_MAX_TX_AMOUNT)",
            examples=[57.25],
        ),
    ]

    def time(self) -> datetime:
        """The transaction time as a naive UTC datetime (what the feature code takes)."""
        return datetime.strptime(self.tx_datetime, TIMESTAMP_FORMAT)

    def time_utc(self) -> datetime:
        return self.time().replace(tzinfo=UTC)


def request_body(max_items: int):
    """A JSON array of 1 to ``max_items`` transactions (PIPELINE_SERVING_MAX_ITEMS).

    A single JSON object is accepted too: the service's middleware (:mod:`serving.http`) passes it
    on as a list of one and answers with the object alone.
    """
    return Annotated[list[Transaction], Field(min_length=1, max_length=max_items)]


class Score(BaseModel):
    """The answer for one transaction."""

    transaction_id: str
    score: float = Field(description="fraud probability from the model, 0 to 1")
    alert: bool = Field(description="score at or above the version's alert threshold (review budget k a day)")
    alert_threshold: float
    model_name: str
    model_version: str
    feature_set_version: str
    request_id: str = Field(description="id of this answer (one per transaction), also in the prediction log")
    features: dict[str, float] | None = Field(None, description="with explain=true: the feature values")
    contributions: dict[str, float] | None = Field(
        None, description="with explain=true: each feature's contribution to the raw score (log-odds), and 'bias'"
    )
