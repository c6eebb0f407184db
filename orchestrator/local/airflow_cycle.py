"""One pipeline cycle through a real Airflow: the README's main command and the end-to-end tests.

Starts Airflow as plain processes (scheduler, dag-processor, api-server,
triggerer; see airflow_local), writes the next day of demo source data,
triggers the tick and waits until every DAG of the plan has run from the Asset
events upstream, then reports per DAG its state, duration and the Assets it emitted.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..plan import Plan, plan_from_config
from ..plan.config import OrchestrationConfig
from ..profiles import REPO_ROOT
from .direct import advance_sources, prepare_warehouse
from .launcher import LocalAirflow, RunReport, cycle_report, utcnow
from .warehouse import table_row_counts

DAGS_FOLDER = REPO_ROOT / "dags"


def airflow_home(env: dict[str, str]) -> Path:
    return Path(env.get("ORCHESTRATOR_AIRFLOW_HOME") or REPO_ROOT / "var" / "airflow")


def task_env(config: OrchestrationConfig, env: dict[str, str]) -> dict[str, str]:
    """What the Airflow processes (and so the tasks) need to find this project and profile."""
    keep = {k: v for k, v in env.items() if not k.startswith("AIRFLOW")}
    keep.update(ORCHESTRATION_CONFIG=str(config.path), PIPELINE_PROFILE=config.profile.name)
    return keep


def local_airflow(config: OrchestrationConfig, env: dict[str, str], **kwargs) -> LocalAirflow:
    """The profile's Airflow: LocalExecutor on SQLite (embedded), or CeleryExecutor with Redis and
    N workers on PostgreSQL (production); ORCHESTRATOR_AIRFLOW_* override (see Profile.airflow_settings)."""
    a = config.profile.airflow_settings(env)
    extra = task_env(config, env)
    if a["executor"] == "CeleryExecutor":
        from .launcher import celery_env

        extra.update(celery_env(a["metadata_db_url"], a["broker_url"] or None))
    kwargs.setdefault("metadata_db_url", a["metadata_db_url"] or None)
    kwargs.setdefault("executor", a["executor"])
    kwargs.setdefault("workers", int(a["workers"] or 0))
    return LocalAirflow(airflow_home(env), DAGS_FOLDER, extra=extra, **kwargs)


def start_airflow(config: OrchestrationConfig, env: dict[str, str], **kwargs) -> LocalAirflow:
    return local_airflow(config, env, **kwargs).start()


def prepare(af: LocalAirflow, plan: Plan) -> None:
    """Pools the plan uses, every DAG parsed without import errors, and unpaused."""
    client = af.client
    for pool in sorted({d.pool for d in plan.dags if d.pool}):
        client.create_pool(pool, 1, "DuckDB allows one writer: warehouse writes run one at a time")
    client.wait_for_dags([d.dag_id for d in plan.dags])
    for d in plan.dags:
        client.unpause(d.dag_id)


@dataclass
class AirflowCycle:
    reports: list[RunReport]
    raw_rows: dict[str, int]
    source_days: list[int]

    @property
    def ok(self) -> bool:
        return all(r.state == "success" for r in self.reports)

    def summary(self) -> str:
        """Per DAG: state, duration, hop lag, what started it; then each Asset it emitted."""

        def secs(v: float | None) -> str:
            return "-" if v is None else f"{v:.1f}s"

        w = max([len("DAG"), *(len(r.dag_id) for r in self.reports)]) + 2
        lines = [f"{'DAG':<{w}}{'state':<9}{'duration':>9}{'lag':>7}  started by"]
        for r in self.reports:
            started = sorted({e["name"] for e in r.triggered_by}) or [r.run_type]
            lines.append(f"{r.dag_id:<{w}}{r.state:<9}{secs(r.duration):>9}{secs(r.lag):>7}  {', '.join(started)}")
            for event in sorted(r.emitted, key=lambda e: e["name"]):
                extra = event.get("extra") or {}
                detail = " ".join(
                    f"{k}={extra[k]}"
                    for k in ("records_extracted", "status", "rows_affected", "duration_s")
                    if extra.get(k) is not None
                )
                lines.append(f"    -> {event['name']:<40} {detail}")
        starts = [r.start for r in self.reports if r.start]
        ends = [r.end for r in self.reports if r.end]
        if starts and ends:
            lines.append(
                f"Cycle wall time (first run start -> last run end): {(max(ends) - min(starts)).total_seconds():.1f}s"
            )
        lags = [r.lag for r in self.reports if r.lag is not None]
        if lags:
            lines.append(
                f"Asset event -> downstream run start: median {sorted(lags)[len(lags) // 2]:.2f}s, "
                f"max {max(lags):.2f}s over {len(lags)} hops"
            )
        lines += ["", f"{'warehouse table':<28}{'rows':>8}"]
        lines += [f"{name:<28}{n:>8}" for name, n in self.raw_rows.items()]
        return "\n".join(lines)


def cycle_dag_ids(plan: Plan) -> list[str]:
    """The DAGs one cycle runs, upstream first: tick, Meltano, dbt (not the manual state DAG)."""
    order = {"tick": 0, "meltano": 1, "dbt": 2}
    return [d.dag_id for d in sorted(plan.dags, key=lambda d: order.get(d.kind, 9)) if d.kind in order]


def run_cycle_in(
    af: LocalAirflow,
    config: OrchestrationConfig,
    env: dict[str, str],
    plan: Plan,
    *,
    new_day: bool = True,
    wait_for: list[str] | None = None,
    timeout: float = 900,
) -> AirflowCycle:
    """Trigger the tick on a running Airflow and wait for the DAGs of one cycle."""
    days = advance_sources(config.profile, env) if new_day else []
    since = utcnow()
    af.client.trigger(config.tick_dag_id)
    reports = cycle_report(af.client, since, wait_for or cycle_dag_ids(plan), timeout=timeout)
    return AirflowCycle(reports=reports, raw_rows=table_row_counts(config.profile.dbt_target, env), source_days=days)


def run_airflow_cycle(
    config: OrchestrationConfig, *, env: dict[str, str] | None = None, new_day: bool = True, log=print
) -> AirflowCycle:
    env = dict(env if env is not None else config.profile.environment())
    prepare_warehouse(config.profile, env)
    plan = plan_from_config(config, cache_dir=None)
    if plan.errors:
        raise RuntimeError("the plan has errors; run `orchestrator check`:\n" + "\n".join(map(str, plan.errors)))
    with local_mail_sink(env, log):
        log(f"==> starting Airflow in {airflow_home(env)} (logs: {airflow_home(env) / 'logs'})")
        with start_airflow(config, env) as af:
            log(f"    up in {af.startup_seconds:.1f}s at {af.url}")
            prepare(af, plan)
            log(f"==> triggering {config.tick_dag_id}; waiting for {len(cycle_dag_ids(plan))} DAGs")
            return run_cycle_in(af, config, env, plan, new_day=new_day)


@contextmanager
def local_mail_sink(env: dict[str, str], log=print) -> Iterator[None]:
    """Alert e-mails of a local run land in var/mail/ (one .eml each), unless ALERTING_SMTP_HOST
    points at a real server. Sets ALERTING_SMTP_HOST/PORT in `env` for the Airflow processes."""
    if env.get("ALERTING_SMTP_HOST"):
        yield
        return
    from alerting.mailsink import MailSink

    with MailSink(REPO_ROOT / "var" / "mail", port=int(env.get("ALERTING_SMTP_PORT") or 1025)) as sink:
        env.update(ALERTING_SMTP_HOST=sink.host, ALERTING_SMTP_PORT=str(sink.port))
        log(f"    alert e-mails go to a local mail sink on port {sink.port}: {sink.directory}/")
        try:
            yield
        finally:
            if sink.count:
                log(f"    {sink.count} alert e-mail(s) received: {sink.directory}/index.txt")
