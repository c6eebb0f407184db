"""The plan's data model: plain, immutable, JSON-serialisable.

The plan is the single source of truth: the Airflow layer renders it, the CLI
prints it, the tests assert on it. Nothing here imports Airflow.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

TICK = "tick"
KINDS = ("tick", "meltano", "dbt", "meltano_state", "alerting")


@dataclass(frozen=True)
class Issue:
    """A warning or error, naming the file and the model/source/plugin it is about."""

    file: str
    subject: str
    message: str
    dags: tuple[str, ...] = ()  # errors: the DAGs it concerns, left out of the rendering (empty: the whole kind)

    def __str__(self) -> str:
        return f"{self.file}: {self.subject}: {self.message}"


@dataclass(frozen=True)
class Schedule:
    cron: str | None = None
    assets: tuple[str, ...] = ()  # all of them (AND), by Asset name


@dataclass(frozen=True)
class TaskSpec:
    task_id: str
    kind: str  # emit_tick | meltano_run | dbt_build | dbt_test | meltano_state
    args: tuple[str, ...] = ()  # argv for the runner (never a shell string)
    upstream: tuple[str, ...] = ()
    outlets: tuple[str, ...] = ()
    models: tuple[str, ...] = ()  # dbt: unique_ids built by this task
    relations: tuple[tuple[str, str], ...] = ()  # dbt: (unique_id, relation) of the nodes that build one
    inlets: tuple[str, ...] = ()  # Assets whose events the task reads (alerting: lateness)


@dataclass(frozen=True)
class DagSpec:
    dag_id: str
    kind: str
    schedule: Schedule
    outlets: tuple[str, ...]
    tasks: tuple[TaskSpec, ...]
    description: str
    doc_md: str
    tags: tuple[str, ...]
    owner: str
    max_active_runs: int | None = None
    pool: str | None = None
    tag: str | None = None  # dbt: the orchestration tag (None: monolith, catch-all)
    models: tuple[str, ...] = ()  # dbt: unique_ids of the nodes it builds
    tests: tuple[str, ...] = ()  # dbt: unique_ids of the tests it runs
    owners: dict[str, str] = field(default_factory=dict)  # dbt: unique_id -> meta.owner
    extractor: str | None = None  # meltano
    loader: str | None = None  # meltano
    state_ids: tuple[str, ...] = ()  # meltano, meltano_state: Meltano state IDs involved
    state_dags: dict[str, str] = field(default_factory=dict)  # meltano_state: state ID -> DAG that writes it
    lateness: tuple[dict, ...] = ()  # alerting: per Asset-scheduled dbt DAG, when it counts as late

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["schedule"] = {"cron": self.schedule.cron, "assets": list(self.schedule.assets)}
        d["outlets"] = list(self.outlets)
        keep_dbt = self.kind == "dbt"
        for key in ("tag", "models", "tests", "owners"):
            if not keep_dbt:
                d.pop(key)
        for key in ("extractor", "loader"):
            if self.kind != "meltano":
                d.pop(key)
        if self.kind not in ("meltano", "meltano_state"):
            d.pop("state_ids")
        if self.kind != "meltano_state":
            d.pop("state_dags")
        if self.kind != "alerting":
            d.pop("lateness")
        else:
            d["lateness"] = list(self.lateness)
        return d


@dataclass
class Plan:
    dags: list[DagSpec] = field(default_factory=list)
    assets: dict[str, str] = field(default_factory=dict)  # Asset name -> URI
    warnings: list[Issue] = field(default_factory=list)
    errors: list[Issue] = field(default_factory=list)
    profile: str = ""
    placement: dict[str, dict] = field(default_factory=dict)  # dbt nodes placed by a rule: {dag_id, rule, reason}

    def dag(self, dag_id: str) -> DagSpec:
        for d in self.dags:
            if d.dag_id == dag_id:
                return d
        raise KeyError(dag_id)

    def of_kind(self, kind: str) -> list[DagSpec]:
        return [d for d in self.dags if d.kind == kind]

    def to_dict(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "dags": [d.to_dict() for d in self.dags],
            "assets": dict(self.assets),
            "warnings": [str(w) for w in self.warnings],
            "errors": [str(e) for e in self.errors],
            "placement": dict(self.placement),
        }
