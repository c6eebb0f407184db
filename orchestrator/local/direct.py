"""One pipeline cycle run directly (no Airflow): new source data, Meltano loads, dbt build; and
what a first cycle needs prepared.

This is the data plane the Airflow DAGs orchestrate (`orchestrator cycle`), and what the
data-plane tests exercise. Nothing is written outside the stores the configuration names: demo
source data only for a profile with `demo_data` (this repo's demo), a warehouse database created
only for the demo, Meltano's system database and the alert outbox where the profile's
MELTANO_DATABASE_URI / ALERTING_OUTBOX_URL say.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from ..config import ConfigError, OrchestrationConfig, Profile
from ..plan import plan_from_config
from ..plan.changed import changed_inputs, changed_selection
from ..plan.translator import load_translator
from ..runners.dbt import DbtProjectRef, DbtRunResult, run_dbt
from ..runners.dbt_profile import resolve_target
from ..runners.meltano import MeltanoResult, record_counts, run_extractor, run_meltano
from ..runners.reconcile import ReconcileError, StreamCheck, meltano_streams, reconciliation
from .warehouse import ensure_postgres_database, table_row_counts


@dataclass
class CycleReport:
    profile: str
    source_days: list[int]
    loads: dict[str, MeltanoResult] = field(default_factory=dict)
    dbt: DbtRunResult | None = None
    raw_rows: dict[str, int] = field(default_factory=dict)
    duration_s: float = 0.0
    reconciled: list[StreamCheck] = field(default_factory=list)
    reconcile_s: float = 0.0  # spent reconciling, against the Meltano runs' own time
    # `dbt.build: changed`: the Meltano tables that brought new rows (None: `all`, the whole project)
    dbt_changed: list[str] | None = None

    def summary(self) -> str:
        lines = [
            f"Cycle on profile '{self.profile}' in {self.duration_s:.1f}s "
            f"(source day(s) written: {', '.join(map(str, self.source_days)) or 'none'})",
            "",
            f"{'extractor':<24}{'stream':<14}{'extracted':>10}",
        ]
        for extractor, res in self.loads.items():
            for stream, n in sorted(res.records.items()):
                lines.append(f"{extractor:<24}{stream:<14}{n:>10}")
        mismatches = [c for c in self.reconciled if c.status == "mismatch"]
        meltano_s = sum(r.duration_s for r in self.loads.values())
        lines += [
            "",
            f"reconciled {len(self.reconciled)} table(s): {len(mismatches)} mismatch(es), in {self.reconcile_s:.3f}s "
            f"({100 * self.reconcile_s / meltano_s if meltano_s else 0:.1f}% of the Meltano runs' {meltano_s:.1f}s)",
        ]
        lines += [f"  MISMATCH {c.message()}" for c in mismatches]
        lines += [f"  skipped {c.relation}: {c.cause}" for c in self.reconciled if c.status == "skipped"]
        lines += ["", f"{'warehouse table':<28}{'rows':>8}"]
        lines += [f"{name:<28}{n:>8}" for name, n in self.raw_rows.items()]
        if self.dbt_changed is not None:
            lines += ["", f"dbt.build changed: new rows in {', '.join(self.dbt_changed) or 'no table'}"]
        if self.dbt:
            models, tests = self.dbt.of_type("model"), self.dbt.of_type("test")
            ok_models = sum(1 for m in models if m.status == "success")
            ok_tests = sum(1 for t in tests if t.status == "pass")
            lines += [
                "",
                f"dbt build: {ok_models}/{len(models)} models built, "
                f"{ok_tests}/{len(tests)} tests passed in {self.dbt.duration_s:.1f}s",
            ]
        return "\n".join(lines)


def advance_sources(profile: Profile, env: dict[str, str]) -> list[int]:
    """Write the next day of demo data where this profile's extractors read, for a profile of this
    repo's demo (`demo_data: files | databases`); any other profile's sources are left alone."""
    if profile.demo_data is None:
        return []
    # Only this repository's demo writes source data: any other profile never pays for the writers
    # (0.18 s on 2 loaded cores, bench/import_cost.py).
    from demo_data.writers import DatabaseDestination, FileDestination, advance

    if profile.demo_data == "files":
        if not env.get("DEMO_DATA_DIR"):
            raise ConfigError(f"profile {profile.name!r}: demo_data: files writes to $DEMO_DATA_DIR, which is not set")
        return advance(FileDestination(env["DEMO_DATA_DIR"]))
    days = advance(DatabaseDestination("mariadb", env.get("DEMO_MARIADB_URL")))
    advance(DatabaseDestination("postgres", env.get("DEMO_POSTGRES_URL")))
    return days


def prepare_warehouse(config: OrchestrationConfig, env: dict[str, str]) -> None:
    """What a first cycle needs: the DuckDB file's folder (neither dbt-duckdb nor target-duckdb
    creates it); the demo's PostgreSQL warehouse database; Meltano's system database, migrated once;
    the alert outbox's PostgreSQL database."""
    target = resolve_target(config, env)
    if (duckdb := target.duckdb_path(config.dbt_project_dir)) is not None:
        duckdb.parent.mkdir(parents=True, exist_ok=True)
    if target.type == "postgres" and config.profile.demo_data is not None:
        ensure_postgres_database(target.postgres_url())
    prepare_meltano_system_db(config, env)
    prepare_alert_outbox(config.outbox_url(env))


def prepare_alert_outbox(uri: str) -> None:
    """The alert outbox's PostgreSQL database, created if missing (its tables are created on use)."""
    if uri.startswith("postgresql"):
        ensure_postgres_database(sa.make_url(uri).set(drivername="postgresql+psycopg2"))


def prepare_meltano_system_db(config: OrchestrationConfig, env: dict[str, str]) -> None:
    """Migrate a new Meltano system database once, before any load runs.

    Concurrent first runs on a new database race on its migrations (one fails with a duplicate
    `alembic_version`), which the parallel Meltano DAGs of a first cycle would hit.
    """
    uri = env.get("MELTANO_DATABASE_URI", "")
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///") :])
        db.parent.mkdir(parents=True, exist_ok=True)
        migrated = db.exists()
    elif uri.startswith("postgresql"):
        url = sa.make_url(uri).set(drivername="postgresql+psycopg2")
        ensure_postgres_database(url)
        engine = sa.create_engine(url)
        try:
            with engine.connect() as conn:
                migrated = conn.execute(sa.text("SELECT to_regclass('alembic_version')")).scalar() is not None
        finally:
            engine.dispose()
    else:
        return
    if not migrated:
        run_meltano(
            ["upgrade", "database"],
            environment=config.profile.meltano_environment,
            env=env,
            project_root=config.meltano_project,
            executable=config.meltano.executable,
            log=lambda line: None,
        )


def run_cycle(
    config: OrchestrationConfig,
    *,
    env: dict[str, str] | None = None,
    new_day: bool = True,
    log: Callable[[str], None] = print,
    meltano_log: Callable[[str], None] | None = None,
) -> CycleReport:
    """One cycle of the configured projects: every extractor of the profile, then `dbt build`."""
    started = time.monotonic()
    profile = config.profile
    env = env if env is not None else profile.environment()
    prepare_warehouse(config, env)
    report = CycleReport(profile=profile.name, source_days=advance_sources(profile, env) if new_day else [])
    changed_mode = config.dbt.build == "changed"
    plan = plan_from_config(config, kinds=("meltano", "dbt") if changed_mode else ("meltano",), cache_dir=None)
    streams = {a: s for d in plan.meltano_dags() for a, s in meltano_streams(d, plan.assets).items()}
    for extractor in profile.extractors:
        log(f"==> meltano run {extractor} {profile.loader}")
        mine = {rel: (table, e) for rel, table, e in streams.values() if e == extractor}
        setup_started = time.monotonic()  # the probe and the loader's defect: part of the overhead
        check = reconciliation(config, env, mine, log=meltano_log or (lambda line: None))
        report.reconcile_s += time.monotonic() - setup_started
        check.before()
        report.loads[extractor] = run_extractor(
            extractor,
            profile.loader,
            environment=profile.meltano_environment,
            env=env,
            project_root=config.meltano_project,
            executable=config.meltano.executable,
            log=meltano_log or (lambda line: None),
        )
        checks = check.after(report.loads[extractor].metric_lines)
        report.reconciled += checks
        report.reconcile_s += check.seconds
        _report_mismatches(config, env, [c for c in checks if c.status == "mismatch"], log)
    project = DbtProjectRef.of(config, env)
    args: list[str] | None = ["build"]
    if changed_mode:
        args, changed = _changed_build(config, plan, streams, report)
        report.dbt_changed = sorted(changed)
    if args is None:
        log("==> dbt build: no Meltano table brought new rows, nothing to build (dbt.build: changed)")
    else:
        log(f"==> dbt {' '.join(args)} ({project.project_dir})")
        report.dbt = run_dbt(args, env=env, project=project, target_path=config.dbt_runs_dir(env) / "cycle")
    report.raw_rows = table_row_counts(config, env, plan)
    report.duration_s = time.monotonic() - started
    return report


def _changed_build(
    config: OrchestrationConfig, plan, streams: dict[str, tuple[str, str, str]], report: CycleReport
) -> tuple[list[str] | None, set[str]]:
    """The rule the dbt DAGs follow under `dbt.build: changed` (plan/changed.py), on the whole
    project: the Meltano tables are the inputs, each with the rows this cycle extracted and wrote."""
    table_of = load_translator(config).stream_table
    records: dict[str, int] = {}
    for extractor, load in report.loads.items():
        for table, n in record_counts(load.metric_lines, extractor, table_of).items():
            records[table] = records.get(table, 0) + n
    checks = {c.relation: c.extra() for c in report.reconciled}
    events = []
    for asset, (relation, table, _) in streams.items():
        events.append((asset, {"records_extracted": records.get(table, 0), **checks.get(relation, {})}))
    return project_selection(plan, set(streams), events)


def project_selection(plan, tables: set[str], events: list[tuple[str, dict]]) -> tuple[list[str] | None, set[str]]:
    """`dbt build` of the whole project under `dbt.build: changed`: the Meltano `tables` (Assets)
    the dbt DAGs read are the inputs; `events` (Asset, extra) say which brought new rows."""
    inputs: dict[str, set[str]] = {}
    always: set[str] = set()
    for dag in plan.dbt_dags():
        for asset, selectors in dag.inputs.items():
            if asset in tables:
                inputs.setdefault(asset, set()).update(selectors)
        always.update(dag.always_build)
    changed = changed_inputs(events, inputs)
    return changed_selection(["build"], inputs, changed, always), changed


def _report_mismatches(
    config: OrchestrationConfig, env: dict[str, str], mismatches: list[StreamCheck], log: Callable[[str], None]
) -> None:
    """As the Airflow task does: `meltano.reconcile` fail stops the cycle; warn sends a rows_mismatch alert."""
    if not mismatches:
        return
    error = "rows not loaded as extracted: " + "; ".join(c.message() for c in mismatches)
    if any(config.meltano.reconcile_mode(c.extractor) == "fail" for c in mismatches):
        raise ReconcileError(error)
    log(f"warning: {error}")
    from alerting.airflow import AirflowAlerts
    from alerting.events import Alert

    extractors = ", ".join(sorted({c.extractor for c in mismatches}))
    from ..plan.translator import load_translator

    first = mismatches[0].extractor
    alert = Alert(
        kind="rows_mismatch",
        dag_id=load_translator(config).meltano_dag_id(first),  # the DAG that runs it under Airflow: same routes
        dag_tags=["meltano", *(f"extractor:{e}" for e in sorted({c.extractor for c in mismatches}))],
        error=error,
        meltano={"extractor": extractors},  # type: ignore[arg-type]  # Alert takes the dict shape too
        extra={"reconcile": [c.__dict__ for c in mismatches]},
    )
    try:
        AirflowAlerts(config.alerting_config, outbox_url=config.outbox_url(env)).notifier().notify(alert)
    except Exception as exc:  # noqa: BLE001 - a notice: never a reason to stop the cycle
        log(f"warning: the rows_mismatch alert could not be sent: {type(exc).__name__}: {exc}")
