"""What the DAG files `orchestrator init` writes run when Airflow parses them.

    orchestrator_dags.py          globals().update(render_all(CONFIG))   every DAG of every kind
    orchestrator_plan_errors.py   raise_plan_errors(CONFIG)              the problems, as its import error

One file defines every DAG, so it cannot raise without losing all of them: each kind renders on
its own (a broken manifest leaves out the dbt DAGs, not the tick), and the second file reports
what was left out. It repeats the checks the rendering does (config, inputs, plan, routing file,
Asset URIs) without building Airflow DAG objects: a DAG built there would be registered twice.

Both set ORCHESTRATION_CONFIG for their own process: the task callables and the alert callbacks
load the config by that variable, and Airflow parses the DAG file in the process that runs a
task, so every task of these DAGs reads the config the DAGs were rendered from.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from .. import settings

log = logging.getLogger(__name__)


def _pin(config_path: str | Path) -> Path:
    path = Path(config_path)
    os.environ[settings.ORCHESTRATION_CONFIG.name] = str(path)
    return path


def render_all(config_path: str | Path) -> dict[str, Any]:
    """Every DAG of the config, by dag_id. A kind that cannot render is left out (logged here,
    shown by raise_plan_errors), and every other kind still renders."""
    from ..airflow.render import render_dags
    from ..plan.model import KINDS

    path = _pin(config_path)
    dags: dict[str, Any] = {}
    twice: set[str] = set()
    for kind in KINDS:
        try:
            rendered = render_dags(kind, path)
        except Exception as exc:  # noqa: BLE001 - the other kinds must render; the errors file shows it
            log.warning("orchestrator: the %s DAGs of %s are left out: %s", kind, path, exc)
            continue
        twice |= dags.keys() & rendered.keys()
        dags.update(rendered)
    for dag_id in twice:  # two kinds made one DAG id: neither is kept (the errors file names it)
        log.warning("orchestrator: two DAGs of %s have the id %s: both are left out", path, dag_id)
        dags.pop(dag_id)
    return dags


def plan_problems(config_path: str | Path) -> list[str]:
    """Why DAGs are left out of render_all, one line (or paragraph) per problem; [] if none."""
    from alerting.routing import RoutingConfig

    from ..airflow.render import assets
    from ..plan import load_config, plan_from_config
    from ..plan.model import KINDS

    path = _pin(config_path)
    try:
        config = load_config(path)
    except ValueError as exc:  # ConfigError: names the file and the key
        return [f"no DAG renders: {exc}"]
    problems: list[str] = []

    def add(text: str) -> None:
        if text not in problems:
            problems.append(text)

    try:
        RoutingConfig.load(config.alerting_config)
    except ValueError as exc:
        add(f"the {config.alerting.dag_id} DAG is left out: {exc}")
    for kind in KINDS:
        try:
            plan = plan_from_config(config, kinds=(kind,))
            assets(plan, plan.assets)  # Airflow's own URI checks (e.g. postgres:// needs a database)
        except Exception as exc:  # noqa: BLE001 - a broken input or name: its kind is left out, others render
            add(f"the {kind} DAGs are left out: {exc}")
            continue
        whole = [e for e in plan.errors if not e.dags]
        if whole:
            add(f"the {kind} DAGs are left out: " + "; ".join(str(e) for e in whole))
    try:  # every kind at once, as `orchestrator check` sees it: errors between kinds (one DAG id twice)
        plan = plan_from_config(config)
    except Exception:  # noqa: BLE001 - reported above, kind by kind
        return problems
    for e in plan.errors:
        if e.dags:
            add(f"{', '.join(e.dags)} left out: {e}")
    return problems


class PlanProblems(RuntimeError):
    """The plan leaves DAGs out; the message lists why."""


def raise_plan_errors(config_path: str | Path) -> None:
    problems = plan_problems(config_path)
    if problems:
        raise PlanProblems(
            f"{len(problems)} problem(s) in the orchestration of {config_path}; run "
            f"`orchestrator --config {config_path} check`:\n" + "\n".join(f"  {p}" for p in problems)
        )
