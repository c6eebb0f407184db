"""Alert events: what happened, in a form every renderer and the outbox share."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

# rows_mismatch: a Meltano run whose loader wrote fewer (or more) rows than its tap emitted; a notice
# (the task may have succeeded): it opens no incident, so no "recovered" follows it.
KINDS = ("task_failed", "dag_failed", "retry", "recovered", "late", "rows_mismatch")

_UUID = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")
_TIMESTAMP = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"
    r"|\b\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?\b"
)
_HEX = re.compile(r"\b0x[0-9a-fA-F]+\b|\b(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{6,}\b")
_DIGITS = re.compile(r"\d+")
_SPACE = re.compile(r"\s+")


def normalise_error(error: str | None) -> str:
    """The error with what varies between occurrences of the same failure replaced:
    UUIDs, timestamps, hex ids/addresses and numbers; whitespace collapsed."""
    text = error or ""
    text = _UUID.sub("<uuid>", text)
    text = _TIMESTAMP.sub("<ts>", text)
    text = _HEX.sub("<hex>", text)
    text = _DIGITS.sub("<n>", text)
    return _SPACE.sub(" ", text).strip()


@dataclass
class DbtFailure:
    name: str  # e.g. model.shop.fct_orders or its short name
    resource_type: str = "model"  # model | test | seed | snapshot
    owners: list[str] = field(default_factory=list)  # owner e-mails (meta.owner)
    message: str = ""


@dataclass
class DbtContext:
    failures: list[DbtFailure] = field(default_factory=list)
    tag: str | None = None  # the dbt tag (selector) the DAG ran
    omitted: int = 0  # failures left out of `failures` to bound the alert's size (the first ones are kept)

    @property
    def total(self) -> int:
        """How many dbt nodes failed, those left out included."""
        return len(self.failures) + self.omitted


@dataclass
class MeltanoContext:
    extractor: str
    state_id: str | None = None
    log_tail: list[str] = field(default_factory=list)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Alert:
    kind: str
    dag_id: str
    task_id: str | None = None
    run_id: str | None = None
    try_number: int | None = None
    max_tries: int | None = None
    duration_s: float | None = None
    log_url: str | None = None
    error: str = ""
    dag_tags: list[str] = field(default_factory=list)
    dbt: DbtContext | None = None
    meltano: MeltanoContext | None = None
    occurred_at: datetime = field(default_factory=_utcnow)
    # kind-specific detail: history (earlier failed tries), failing_since/failures (recovered),
    # missing_assets/expected_by/cycle (late), reason (dag_failed)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown alert kind {self.kind!r} (one of {', '.join(KINDS)})")
        if isinstance(self.dbt, dict):
            d = dict(self.dbt)
            d["failures"] = [f if isinstance(f, DbtFailure) else DbtFailure(**f) for f in d.get("failures", [])]
            self.dbt = DbtContext(**d)
        if isinstance(self.meltano, dict):
            self.meltano = MeltanoContext(**self.meltano)
        if isinstance(self.occurred_at, str):
            self.occurred_at = datetime.fromisoformat(self.occurred_at)
        if self.occurred_at.tzinfo is None:
            self.occurred_at = self.occurred_at.replace(tzinfo=UTC)
        self.dag_tags = list(self.dag_tags or [])
        self.extra = dict(self.extra or {})

    def signature(self) -> str:
        """Stable across occurrences of the same failure: used for de-duplication."""
        key = json.dumps([self.dag_id, self.task_id or "", normalise_error(self.error)])
        return hashlib.sha256(key.encode()).hexdigest()[:32]

    def alert_id(self) -> str:
        """One occurrence: the signature plus what identifies this event. Enqueueing the same
        occurrence twice (a callback re-run) yields the same id, so it is delivered once."""
        key = json.dumps(
            [self.signature(), self.kind, self.run_id or "", self.try_number, self.occurred_at.isoformat()]
        )
        return hashlib.sha256(key.encode()).hexdigest()[:32]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["occurred_at"] = self.occurred_at.isoformat()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Alert:
        return cls(**d)
