"""The plan's data model: plain, immutable, JSON-serialisable.

The plan is the single source of truth: the Airflow layer renders it, the CLI prints it, the
tests assert on it. Nothing here imports Airflow. One DAG spec class per kind of DAG, each with
only the fields of its kind; the Airflow layer picks a builder per kind.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Literal, get_args

import msgspec

Kind = Literal["tick", "meltano", "dbt", "meltano_state", "alerting"]
TaskKind = Literal[
    "emit_tick", "meltano_run", "meltano_state", "dbt_build", "dbt_test", "alerts_redeliver", "alerts_lateness"
]
KINDS: tuple[Kind, ...] = get_args(Kind)


class Issue(msgspec.Struct, frozen=True, gc=False):
    """A warning or error, naming the file and the model/source/plugin it is about. A msgspec
    Struct, as AssetSpec: see there."""

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


class Deferred:
    """Fields a cached plan decodes on their first read (plan/cache.py): a DAG file renders each dbt
    DAG from its schedule, outlets and task ids; only the task that runs reads the node lists and
    the dbt arguments (about 45,000 unique_ids and selectors at 10,000 models, most of a cached
    plan's decode). A deferred instance holds `_fill` (and not the fields) until then; any other
    instance is a plain frozen dataclass: Python calls `__getattr__` only for a missing attribute."""

    DEFERRED: ClassVar[tuple[str, ...]] = ()

    def __getattr__(self, name: str) -> Any:
        fill = self.__dict__.get("_fill")
        if fill is None or name not in self.DEFERRED:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        fill(self)  # sets every deferred field and drops `_fill`
        return self.__dict__[name]


def _no_class_defaults(cls: type) -> type:
    """Drop the class attributes a dataclass leaves for its deferred fields' defaults: else a
    deferred instance would read the default () instead of reaching `__getattr__`. The generated
    `__init__` keeps its own copy of each default."""
    for name in cls.DEFERRED:  # type: ignore[attr-defined]
        if name in vars(cls):
            delattr(cls, name)
    return cls


@_no_class_defaults
@dataclass(frozen=True)
class TaskSpec(Deferred):
    DEFERRED: ClassVar[tuple[str, ...]] = ("args", "models", "relations")
    task_id: str
    kind: TaskKind
    args: tuple[str, ...] = ()  # argv for the runner (never a shell string)
    upstream: tuple[str, ...] = ()
    outlets: tuple[str, ...] = ()
    models: tuple[str, ...] = ()  # dbt: unique_ids built by this task
    # What the runner reports by, and the Asset it is: dbt (unique_id, Asset) of each node that builds
    # one; Meltano (table, Asset) of each table it loads (its records are counted by table).
    relations: tuple[tuple[str, str], ...] = ()
    inlets: tuple[str, ...] = ()  # Assets whose events the task reads (alerting: lateness)


class AssetSpec(msgspec.Struct, frozen=True, gc=False):
    """An Asset as Airflow shows it: its URI, the group it folds into, and what it is.

    A msgspec Struct, not a dataclass: a 10,000-model plan holds ten thousand of them, which the
    plan cache (cache.py) decodes about twice as fast as dataclasses, and `gc=False` keeps them out
    of the garbage collector (a plan holds no reference cycles): they were half the objects its
    first pass after a cached load scanned."""

    uri: str
    group: str = "asset"
    extra: dict[str, Any] = msgspec.field(default_factory=dict)
    relation: str | None = None  # the warehouse relation (schema.table) behind it, if any
    database: str | None = None  # the relation's database, where known (relations.py)


@dataclass(frozen=True, kw_only=True)
class DagSpec:
    kind: ClassVar[Kind]
    dag_id: str
    schedule: Schedule
    outlets: tuple[str, ...]
    tasks: tuple[TaskSpec, ...]
    description: str
    doc_md: str
    tags: tuple[str, ...]
    owner: str
    max_active_runs: int | None = None
    pool: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"dag_id": self.dag_id, "kind": self.kind}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "schedule":
                value = {"cron": value.cron, "assets": list(value.assets)}
            elif f.name == "tasks":
                value = [_plain({f.name: getattr(t, f.name) for f in fields(t)}) for t in value]
            out[f.name] = _plain(value)
        return out


def _plain(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


@dataclass(frozen=True, kw_only=True)
class TickDag(DagSpec):
    kind: ClassVar[Kind] = "tick"


@dataclass(frozen=True, kw_only=True)
class MeltanoDag(DagSpec):
    kind: ClassVar[Kind] = "meltano"
    extractor: str | None  # None when a schedule/job runs several
    loader: str
    extractors: tuple[str, ...] = ()  # every extractor it runs
    state_ids: tuple[str, ...] = ()  # Meltano state IDs it writes, one per extractor


@_no_class_defaults
@dataclass(frozen=True, kw_only=True)
class DbtDag(DagSpec, Deferred):
    kind: ClassVar[Kind] = "dbt"
    DEFERRED: ClassVar[tuple[str, ...]] = ("models", "tests", "owners", "inputs", "always_build")
    tag: str | None  # the orchestration tag (None: monolith, catch-all stage, tests-only)
    models: tuple[str, ...] = ()  # unique_ids of the nodes it builds
    tests: tuple[str, ...] = ()  # unique_ids of the tests it runs
    owners: dict[str, str] = field(default_factory=dict)  # unique_id -> meta.owner
    # The task that holds a run until the inputs' latest events agree on a cycle (plan/cycles.py):
    # the DAG's one task itself (it looks before dbt starts), or a `wait_for_cycle` sensor before
    # the roots of a DAG of several tasks (airflow/cycle_wait.py); None: a single input (it cannot
    # disagree with itself), or `dbt.cycle_wait.enabled: false`.
    wait_task: str | None = None
    # `dbt.build: changed` (plan/changed.py): each input Asset -> the dbt selectors of what it is
    # (a source, another DAG's model), and the models built on every run; empty with `all`.
    inputs: dict[str, tuple[str, ...]] = field(default_factory=dict)
    always_build: tuple[str, ...] = ()

    def node_counts(self) -> tuple[int, int]:
        """(models, tests): what the run form says, without decoding a cached DAG's node lists."""
        counts = self.__dict__.get("_counts")
        return counts if counts is not None else (len(self.models), len(self.tests))


@dataclass(frozen=True, kw_only=True)
class StateDag(DagSpec):
    kind: ClassVar[Kind] = "meltano_state"
    state_ids: tuple[str, ...] = ()
    state_dags: dict[str, str] = field(default_factory=dict)  # state ID -> DAG that writes it


@dataclass(frozen=True, kw_only=True)
class AlertingDag(DagSpec):
    kind: ClassVar[Kind] = "alerting"
    lateness: tuple[dict[str, Any], ...] = ()  # alerting.lateness.Expectation's shape, per dbt DAG


@dataclass
class Part:
    """What one step of the plan contributes: DAGs, the Assets they name, warnings, errors."""

    dags: list[DagSpec] = field(default_factory=list)
    assets: dict[str, AssetSpec] = field(default_factory=dict)
    warnings: list[Issue] = field(default_factory=list)
    errors: list[Issue] = field(default_factory=list)


@dataclass
class Plan:
    dags: list[DagSpec] = field(default_factory=list)
    # Asset name -> URI, group, extra: a dict when built, an asset_table.AssetTable when cached
    assets: Mapping[str, AssetSpec] = field(default_factory=dict)
    warnings: list[Issue] = field(default_factory=list)
    errors: list[Issue] = field(default_factory=list)
    profile: str = ""
    placement: dict[str, dict] = field(default_factory=dict)  # dbt nodes placed by a rule: {dag_id, rule, reason}

    def dag(self, dag_id: str) -> Any:
        for d in self.dags:
            if d.dag_id == dag_id:
                return d
        raise KeyError(dag_id)

    def of_kind(self, kind: Kind) -> list[Any]:
        return [d for d in self.dags if d.kind == kind]

    def dbt_dags(self) -> list[DbtDag]:
        return [d for d in self.dags if isinstance(d, DbtDag)]

    def meltano_dags(self) -> list[MeltanoDag]:
        return [d for d in self.dags if isinstance(d, MeltanoDag)]

    def uri(self, name: str) -> str:
        return self.assets[name].uri

    def to_dict(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "dags": [d.to_dict() for d in self.dags],
            "assets": {n: {"uri": a.uri, "group": a.group, "extra": _plain(a.extra)} for n, a in self.assets.items()},
            "warnings": [str(w) for w in self.warnings],
            "errors": [str(e) for e in self.errors],
            "placement": dict(self.placement),
        }
