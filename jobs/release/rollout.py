"""What serves, as the registry says it: the ``champion``, the ``candidate`` and how it is rolled out.

The registry is the one source of truth. The serving state is the registered model's aliases
(``champion``, ``candidate``) and its rollout tags (:class:`jobs.platform.tracking.RolloutTag`):

* no candidate, or no mode: the champion answers every request;
* ``shadow``: the champion answers; the candidate scores the same transactions on the side and both
  scores go to the prediction log;
* ``canary`` with share p: the candidate answers the cards whose ``customer_id`` hashes below p
  (:func:`canary_bucket`: stable, so a card never flips between versions while p holds, and the
  cards of a smaller share stay in a larger one).

The service reads it with one call (:func:`read_state`: aliases and tags come in one response, so it
never sees half a change) every ``PIPELINE_SERVING_RELOAD_S``; ``deploy_model`` writes it through the
functions below. A mode names the version it applies to, so a stale mode never applies to the next
candidate.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from jobs.platform.tracking import Alias, RolloutTag

SHADOW, CANARY = "shadow", "canary"
MODES = (SHADOW, CANARY)


@dataclass(frozen=True)
class ServingState:
    champion: str | None
    candidate: str | None = None
    mode: str | None = None  # SHADOW, CANARY or None (champion only)
    share: float = 0.0
    started_at: str | None = None
    by: str | None = None

    def describe(self) -> dict:
        return {
            "champion": self.champion,
            "candidate": self.candidate,
            "mode": self.mode,
            "share": self.share if self.mode == CANARY else None,
            "started_at": self.started_at,
            "by": self.by,
        }


def read_state(client, name: str) -> ServingState:
    """The serving state of registered model ``name`` from one registry call."""
    rm = client.get_registered_model(name)
    aliases = {str(k): str(v) for k, v in (rm.aliases or {}).items()}
    tags = rm.tags or {}
    candidate = aliases.get(Alias.CANDIDATE)
    mode = tags.get(RolloutTag.MODE)
    if candidate is None or mode not in MODES or tags.get(RolloutTag.VERSION) != candidate:
        mode = None
    try:
        share = min(max(float(tags.get(RolloutTag.SHARE, 0.0)), 0.0), 1.0)
    except ValueError:
        share = 0.0
    return ServingState(
        champion=aliases.get(Alias.CHAMPION),
        candidate=candidate,
        mode=mode,
        share=share if mode == CANARY else 0.0,
        started_at=tags.get(RolloutTag.STARTED_AT) if mode else None,
        by=tags.get(RolloutTag.BY) if mode else None,
    )


def canary_bucket(customer_id: str, candidate_version: str) -> float:
    """A card's place in [0, 1) for the canary of ``candidate_version``: the candidate answers it when below the share.

    A hash (BLAKE2b) of the card and the candidate version: the same in every worker process and
    restart, and a different spread of cards for each new candidate.
    """
    digest = hashlib.blake2b(f"{candidate_version}:{customer_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def set_candidate(client, name: str, version: str) -> None:
    """Point ``candidate`` at ``version``, with no mode yet (the champion still answers everything)."""
    for key in (RolloutTag.MODE, RolloutTag.SHARE, RolloutTag.VERSION, RolloutTag.STARTED_AT, RolloutTag.BY):
        _delete_tag(client, name, key)
    client.set_registered_model_alias(name, Alias.CANDIDATE, version)


def set_mode(client, name: str, version: str, mode: str, share: float, by: str) -> str:
    """Start a phase: ``candidate`` = ``version`` in ``mode`` (with ``share`` for a canary); returns its start time.

    The version and share are written before the mode, so a reader between two writes sees the
    previous phase or the new one, never a mode applied to the wrong version or share.
    """
    if mode not in MODES:
        raise ValueError(f"rollout mode {mode!r}: expected one of {MODES}")
    started = datetime.now(UTC).isoformat(timespec="milliseconds")
    client.set_registered_model_alias(name, Alias.CANDIDATE, version)
    client.set_registered_model_tag(name, RolloutTag.VERSION, version)
    client.set_registered_model_tag(name, RolloutTag.SHARE, f"{share:g}")
    client.set_registered_model_tag(name, RolloutTag.STARTED_AT, started)
    client.set_registered_model_tag(name, RolloutTag.BY, by)
    client.set_registered_model_tag(name, RolloutTag.MODE, mode)
    return started


def clear(client, name: str) -> str | None:
    """End any rollout: the mode first (the champion answers everything again), then the candidate alias.

    Returns the version that was the candidate, if any.
    """
    state = read_state(client, name)
    _delete_tag(client, name, RolloutTag.MODE)
    for key in (RolloutTag.SHARE, RolloutTag.VERSION, RolloutTag.STARTED_AT, RolloutTag.BY):
        _delete_tag(client, name, key)
    if state.candidate is not None:
        client.delete_registered_model_alias(name, Alias.CANDIDATE)
    return state.candidate


def _delete_tag(client, name: str, key: str) -> None:
    from mlflow.exceptions import MlflowException

    with contextlib.suppress(MlflowException):  # not set
        client.delete_registered_model_tag(name, key)
