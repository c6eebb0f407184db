"""The one way in for Airflow DAG files: this repository's dags/ and the files `orchestrator init`
writes call these two functions, and nothing else.

    globals().update(render_dags("dbt"))                 # dags/: one file per kind
    raise_plan_errors()                                  # dags/plan_errors.py
    globals().update(render_dags(config_path=CONFIG))    # init's one file: every kind
    raise_plan_errors(CONFIG, whole_kinds=True)          # init's errors file

A file of one kind renders it from only the inputs it needs and raises what stops it (a broken
manifest, meltano.yml or alerting.yml, an error of the whole kind), so Airflow shows that as its
import error, naming the file, while every other kind keeps working. A file of several kinds
cannot raise without losing them all: a kind that cannot render is left out (logged), and the
errors file reports it (`whole_kinds=True`). Errors that leave only some DAGs out (a cycle the
dbt tags force, two DAGs with one id) never fail a DAG file: the errors file shows them.

A DAG file that names its config pins ORCHESTRATION_CONFIG in the process that parses it: the
tasks Airflow runs from that process read the config its DAGs were rendered from.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from airflow.sdk import DAG, Asset, get_parsing_context

from .. import settings
from ..config import ConfigError, OrchestrationConfig, load_config
from ..plan import plan_from_config
from ..plan.model import KINDS, Kind

log = logging.getLogger(__name__)


class PlanError(RuntimeError):
    """A DAG file cannot render what the plan says; the message lists why, one problem a line."""


def render_dags(
    kinds: Kind | Sequence[Kind] = KINDS,
    config_path: str | Path | None = None,
    *,
    config: OrchestrationConfig | None = None,
) -> dict[str, DAG]:
    """Every DAG of `kinds` (one kind, or several), keyed by dag_id. `config`: an already loaded
    config (`orchestrator check` renders with its command line's overrides)."""
    kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
    if len(kinds) == 1:
        return _render_kind(kinds[0], config or _load(config_path))
    try:
        config = config or _load(config_path)
    except ConfigError as exc:
        log.warning("orchestrator: no DAG renders: %s", exc)
        return {}
    dags: dict[str, DAG] = {}
    twice: set[str] = set()
    for kind in kinds:
        try:
            rendered = _render_kind(kind, config)
        except Exception as exc:  # noqa: BLE001 - the other kinds must render; raise_plan_errors names it
            log.warning("orchestrator: the %s DAGs of %s are left out: %s", kind, config.path, exc)
            continue
        twice |= dags.keys() & rendered.keys()
        dags.update(rendered)
    for dag_id in twice:  # two kinds made one DAG id: neither is kept (raise_plan_errors names it)
        log.warning("orchestrator: two DAGs of %s have the id %s: both are left out", config.path, dag_id)
        dags.pop(dag_id)
    return dags


def raise_plan_errors(
    config_path: str | Path | None = None, *, whole_kinds: bool = False, config: OrchestrationConfig | None = None
) -> None:
    """The errors file's import error: every problem that leaves DAGs out without failing a DAG
    file of its own. `whole_kinds`: the DAG files render several kinds each, so a kind that cannot
    render (and a config that cannot load) is reported here too."""
    try:
        config = config or _load(config_path)
    except ConfigError as exc:  # one-kind DAG files report it themselves
        if whole_kinds:
            raise PlanError(_message(config_path, [f"no DAG renders: {exc}"])) from None
        return
    problems = _kinds_left_out(config) if whole_kinds else []
    try:  # every kind at once, as `orchestrator check` sees it: errors between kinds (one DAG id twice)
        plan = plan_from_config(config, errors_only=True)
    except ConfigError:  # a broken input: the DAG files that read it report it (or the kinds above)
        plan = None
    except Exception:  # noqa: BLE001 - a bug: shown here, unless the kinds above reported it already
        if not whole_kinds:
            raise
        plan = None
    problems += [f"{', '.join(e.dags)} left out: {e}" for e in (plan.errors if plan else []) if e.dags]
    if problems:
        raise PlanError(_message(config.path, list(dict.fromkeys(problems))))


def _message(config_path: str | Path | None, problems: list[str]) -> str:
    where = config_path or "the orchestration config"
    return (
        f"{len(problems)} problem(s) in the orchestration of {where}; run `orchestrator --config {where} check`:\n"
        + "\n".join(f"  {p}" for p in problems)
    )


def _load(config_path: str | Path | None) -> OrchestrationConfig:
    if config_path is not None:
        os.environ[settings.ORCHESTRATION_CONFIG.name] = str(config_path)
    return load_config(config_path)


def _render_kind(kind: Kind, config: OrchestrationConfig) -> dict[str, DAG]:
    """Every DAG of one kind; PlanError (or the input's own error) when the kind cannot render."""
    if kind == "alerting":  # the routing file is read by callbacks at run time: check it here, loudly
        _check_routing(config)
    plan = plan_from_config(config, kinds=(kind,))
    # An error that concerns some DAGs leaves only those out (the errors file shows it); one that
    # concerns the whole kind fails this kind, naming the problem.
    whole = [e for e in plan.errors if not e.dags]
    if whole:
        raise PlanError(
            f"the orchestration plan has {len(whole)} error(s); run `orchestrator check`:\n"
            + "\n".join(f"  {e}" for e in whole)
        )
    broken = {d for e in plan.errors for d in e.dags}
    # A task process parses its DAG's file only to run one task: Airflow names that DAG in the
    # parsing context, and the file builds only it (the dag-processor's parse builds them all).
    only = get_parsing_context().dag_id
    specs = [s for s in plan.of_kind(kind) if s.dag_id not in broken and only in (None, s.dag_id)]
    # Airflow's operators and the alerting callbacks: what renders DAGs imports them, not the errors file
    from .callbacks import airflow_alerts
    from .render import render_dag

    alerts = airflow_alerts(config)  # one per DAG file: every DAG's callbacks share it
    made: dict[str, Asset] = {}  # and its Assets (render.assets)
    return {spec.dag_id: render_dag(plan, config, spec, alerts, made) for spec in specs}


def _kinds_left_out(config: OrchestrationConfig) -> list[str]:
    """Why each kind that a file of several kinds leaves out cannot render (what _render_kind would
    raise), checked without building DAG objects: a DAG built here would be registered twice."""
    from .render import assets

    problems: list[str] = []
    try:
        _check_routing(config)
    except ValueError as exc:  # RoutingConfigError: names the file and the key
        problems.append(f"the alerting DAGs are left out: {exc}")
    for kind in KINDS:
        try:
            plan = plan_from_config(config, kinds=(kind,))
            assets(plan, plan.assets)  # Airflow's own URI checks (e.g. postgres:// needs a database)
        except Exception as exc:  # noqa: BLE001 - a broken input or name: its kind is left out, others render
            problems.append(f"the {kind} DAGs are left out: {exc}")
            continue
        if whole := [e for e in plan.errors if not e.dags]:
            problems.append(f"the {kind} DAGs are left out: " + "; ".join(str(e) for e in whole))
    return list(dict.fromkeys(problems))


def _check_routing(config: OrchestrationConfig) -> None:
    """RoutingConfigError (a ValueError naming the file and the key) when alerting.yml is broken.
    Imported here: the routing schema is the alerting file's import, not every DAG file's."""
    from alerting.routing import RoutingConfig

    RoutingConfig.load(config.alerting_config)
