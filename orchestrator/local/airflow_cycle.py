"""One pipeline cycle through a real Airflow: `orchestrator run` (the README's `make run`) and the
end-to-end tests.

Starts Airflow as plain processes (scheduler, dag-processor, api-server, triggerer; see
processes.py) or uses the one `orchestrator up` runs on the same home, writes the next day of demo
source data, triggers the tick and follows every DAG of the plan as the Asset events set them off,
until each has run or can no longer run this cycle (blocked behind a failed upstream DAG); then
reports per DAG its state, duration and the Assets it emitted (report.py).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .. import settings
from ..config import REPO_ROOT, OrchestrationConfig
from ..init.texts import DAG_FILE, ERRORS_FILE, dag_file_text, errors_file_text
from ..plan import Plan, plan_from_config
from .airflow_env import celery_env
from .client import AirflowClient, utcnow
from .direct import advance_sources
from .processes import LocalAirflow
from .report import CycleSeen, RunReport, cycles_seen, follow_cycle, format_report
from .warehouse import table_row_counts

DAGS_FOLDER = REPO_ROOT / "dags"  # a checkout's DAG files (an installed package has none)
POOL_DESCRIPTION = "DuckDB allows one writer: warehouse writes run one at a time"


def task_env(config: OrchestrationConfig, env: dict[str, str]) -> dict[str, str]:
    """What the Airflow processes (and so the tasks) need to find this project and profile."""
    keep = {k: v for k, v in env.items() if not k.startswith("AIRFLOW")}
    keep.update(
        {settings.ORCHESTRATION_CONFIG.name: str(config.path), settings.PIPELINE_PROFILE.name: config.profile.name}
    )
    return keep


def local_airflow(config: OrchestrationConfig, env: dict[str, str], **kwargs) -> LocalAirflow:
    """The profile's Airflow: LocalExecutor on SQLite (embedded), or CeleryExecutor with Redis and
    N workers on PostgreSQL (production); ORCHESTRATOR_AIRFLOW_* override (see Profile.airflow_settings)."""
    a = config.profile.airflow_settings(env)
    extra = task_env(config, env)
    if a["executor"] == "CeleryExecutor":
        extra.update(celery_env(a["metadata_db_url"], a["broker_url"] or None))
    kwargs.setdefault("metadata_db_url", a["metadata_db_url"] or None)
    kwargs.setdefault("executor", a["executor"])
    kwargs.setdefault("workers", int(a["workers"] or 0))
    home = config.airflow_home(env)
    return LocalAirflow(home, dags_folder(config, home), extra=extra, **kwargs)


def dags_folder(config: OrchestrationConfig, home: Path) -> Path:
    """This checkout's dags/ (its DAG files render the config the processes are given); from an
    installed package, a folder in the Airflow home with the two DAG files `orchestrator init`
    writes, naming this config."""
    if DAGS_FOLDER.is_dir():
        return DAGS_FOLDER
    folder = home / "dags"
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in (
        (DAG_FILE, dag_file_text(str(config.path), False)),
        (ERRORS_FILE, errors_file_text(str(config.path), False)),
    ):
        path = folder / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
    return folder


def start_airflow(config: OrchestrationConfig, env: dict[str, str], plan: Plan | None = None, **kwargs) -> LocalAirflow:
    """The profile's Airflow, started for the plan: the scheduler starts only once the pools exist
    and the dag-processor has stored every DAG of the plan again (see `_before_scheduler`)."""
    plan = plan if plan is not None else plan_from_config(config, cache_dir=None)
    return local_airflow(config, env, **kwargs).start(before_scheduler=lambda af: _before_scheduler(af, plan))


def _before_scheduler(af: LocalAirflow, plan: Plan) -> None:
    """Before the scheduler runs: the pools, and every DAG of the plan parsed again by this start's
    dag-processor. A cron DAG left unpaused by an earlier run (the alerting housekeeping every 5
    minutes, the tick at midnight) still has the `next_dagrun` of before the stop; a scheduler that
    starts first creates that stale run at once, in the middle of the start-up writes. Parsing it
    again recomputes `next_dagrun` by catchup=False's rule (the next cron point after the latest run,
    or the latest past point if the DAG missed it: that one runs once, as Airflow promises), so the
    stale point never runs, and the first scheduling happens on a stored, current set of DAGs."""
    client = af.client
    for pool in sorted({d.pool for d in plan.dags if d.pool}):
        client.create_pool(pool, 1, POOL_DESCRIPTION)
    client.wait_for_dags([d.dag_id for d in plan.dags], timeout=af.startup_timeout, parsed_since=af.started_at)


def prepare(af: LocalAirflow | AirflowClient, plan: Plan) -> None:
    """Pools the plan uses, every DAG parsed without import errors, and unpaused. Idempotent and
    writing only what differs: a pool already right and an unpaused DAG are left alone."""
    client = af.client if isinstance(af, LocalAirflow) else af
    for pool in sorted({d.pool for d in plan.dags if d.pool}):
        client.create_pool(pool, 1, POOL_DESCRIPTION)
    dags = client.wait_for_dags([d.dag_id for d in plan.dags])
    # Asset-scheduled DAGs first, cron DAGs (which may start a run at once) last.
    for d in sorted(plan.dags, key=lambda d: bool(d.schedule.cron)):
        if dags[d.dag_id]["is_paused"]:
            client.unpause(d.dag_id)


@dataclass
class AirflowCycle:
    reports: list[RunReport]
    raw_rows: dict[str, int]
    source_days: list[int]
    cycles: list[CycleSeen] = field(default_factory=list)  # every cycle that ran meanwhile (a cron tick too)

    @property
    def ok(self) -> bool:
        return all(r.state == "success" for r in self.reports)

    def summary(self) -> str:
        return format_report(self.reports, self.raw_rows, self.cycles)


def tick_dag_id(plan: Plan) -> str:
    """The DAG that starts a cycle (its id is the translator's)."""
    [tick] = plan.of_kind("tick")
    return tick.dag_id


def cycle_dag_ids(plan: Plan) -> list[str]:
    """The DAGs one cycle runs, upstream first: tick, Meltano, dbt (not the manual state DAG)."""
    order = {"tick": 0, "meltano": 1, "dbt": 2}
    return [d.dag_id for d in sorted(plan.dags, key=lambda d: order.get(d.kind, 9)) if d.kind in order]


def run_cycle_in(
    af: LocalAirflow | AirflowClient,
    config: OrchestrationConfig,
    env: dict[str, str],
    plan: Plan,
    *,
    new_day: bool = True,
    wait_for: list[str] | None = None,
    timeout: float = 900,
    log: Callable[[str], None] | None = None,
) -> AirflowCycle:
    """Trigger the tick on a running Airflow and follow the DAGs of one cycle, until each has run or
    is blocked behind a failed upstream DAG (from the plan's Asset schedules and outlets)."""
    client = af.client if isinstance(af, LocalAirflow) else af
    days = advance_sources(config.profile, env) if new_day else []
    since = utcnow()
    client.trigger(tick_dag_id(plan))
    graph = {d.dag_id: (d.schedule.assets, d.outlets) for d in plan.dags}
    reports = follow_cycle(client, since, wait_for or cycle_dag_ids(plan), graph=graph, timeout=timeout, log=log)
    cycles = cycles_seen(client, tick_dag_id(plan), since)
    return AirflowCycle(reports=reports, raw_rows=table_row_counts(config, env, plan), source_days=days, cycles=cycles)


@contextmanager
def local_mail_sink(config: OrchestrationConfig, env: dict[str, str], log=print) -> Iterator[None]:
    """Alert e-mails of a local run land in `mail/` beside the Airflow home (var/mail/ by default),
    one .eml each, unless ALERTING_SMTP_HOST points at a real server. Sets ALERTING_SMTP_HOST/PORT in
    `env` for the Airflow processes. Without aiosmtpd (the `mailsink` extra, which a deployment
    need not install) there is no sink: alert e-mails go where alerting.yml says."""
    if settings.ALERTING_SMTP_HOST.get(env):
        yield
        return
    if importlib.util.find_spec("aiosmtpd") is None:
        log(
            "    no local mail sink (aiosmtpd, the `mailsink` extra, is not installed): "
            "alert e-mails go where alerting.yml says"
        )
        yield
        return
    from alerting.mailsink import MailSink  # needs aiosmtpd, an optional extra: checked just above

    port = int(settings.ALERTING_SMTP_PORT.get(env) or 1025)
    with MailSink(config.airflow_home(env).parent / "mail", port=port) as sink:
        env.update({settings.ALERTING_SMTP_HOST.name: sink.host, settings.ALERTING_SMTP_PORT.name: str(sink.port)})
        log(f"    alert e-mails go to a local mail sink on port {sink.port}: {sink.directory}/")
        try:
            yield
        finally:
            if sink.count:
                log(f"    {sink.count} alert e-mail(s) received: {sink.directory}/index.txt")
