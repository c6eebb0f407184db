"""Lineage questions the plan answers for alerts and reports: what a failed DAG takes down with
it this cycle (its blast radius)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .model import DbtDag, Plan


@dataclass(frozen=True)
class BlastRadius:
    dag_id: str
    blocked: tuple[str, ...]  # downstream DAGs that will not run this cycle (each waits for an Asset that won't come)
    stale_models: int  # models those DAGs would have built
    owners: tuple[str, ...]  # their owners, less the failed DAG's own
    missing: dict[str, tuple[str, ...]] = field(default_factory=dict)  # blocked DAG -> the Assets it misses

    def to_dict(self) -> dict:
        return {
            "dag_id": self.dag_id,
            "blocked": list(self.blocked),
            "stale_models": self.stale_models,
            "owners": list(self.owners),
            "missing": {k: list(v) for k, v in self.missing.items()},
        }


def still_arriving(plan: Plan, dag_id: str, task_id: str | None) -> frozenset[str]:
    """The Assets of a DAG whose task `task_id` failed that still arrive this cycle: those of its
    other tasks, less the tasks downstream of it (upstream_failed). Airflow emits a task's Asset
    events only when it succeeds, so the failed task's own outlets never arrive, whatever it built;
    with one task per DAG (the default) nothing does. `task_id` None (the run failed as a whole):
    nothing."""
    if task_id is None:
        return frozenset()
    tasks = {t.task_id: t for t in plan.dag(dag_id).tasks}
    if task_id not in tasks:
        return frozenset()
    lost, changed = {task_id}, True
    while changed:
        changed = False
        for t in tasks.values():
            if t.task_id not in lost and lost & set(t.upstream):
                lost.add(t.task_id)
                changed = True
    return frozenset(a for t in tasks.values() if t.task_id not in lost for a in t.outlets)


def blast_radius(plan: Plan, dag_id: str, emitted: set[str] | frozenset[str] = frozenset()) -> BlastRadius:
    """The DAGs downstream of `dag_id` that cannot run this cycle: a DAG waits for all its Assets
    (AND), so it is blocked as soon as one of them comes from a blocked or failed DAG. `emitted`:
    Assets of the failed DAG that do arrive this cycle despite the failure (`still_arriving`: the
    other tasks of a per-model DAG), which block nothing. Owners are the blocked dbt models'
    `meta.owner`s less the failed DAG's own (its models' owners; a Meltano DAG's `owner`)."""
    producer = {a: d.dag_id for d in plan.dags for a in d.outlets}
    failed = plan.dag(dag_id)
    blocked: dict[str, set[str]] = {}
    down = {dag_id}
    changed = True
    while changed:
        changed = False
        for d in plan.dags:
            if d.dag_id in down:
                continue
            missing = {a for a in d.schedule.assets if producer.get(a) in down and a not in emitted}
            if missing:
                blocked[d.dag_id] = missing
                down.add(d.dag_id)
                changed = True
    dbt = [d for d in plan.dags if d.dag_id in blocked and isinstance(d, DbtDag)]
    own = set(failed.owners.values()) if isinstance(failed, DbtDag) else {failed.owner}
    owners = sorted(
        {o.strip() for d in dbt for u in d.models for o in d.owners.get(u, "").split(",") if o.strip()}
        - {o.strip() for x in own for o in x.split(",")}
    )
    return BlastRadius(
        dag_id,
        tuple(sorted(blocked)),
        sum(len(d.models) for d in dbt),
        tuple(owners),
        {k: tuple(sorted(v)) for k, v in sorted(blocked.items())},
    )
