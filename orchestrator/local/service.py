"""`orchestrator up | down | status`: the profile's Airflow as a long-running local service, the one
way to keep a local Airflow running (`make airflow-up` is `orchestrator up` in the foreground,
`make up` is `orchestrator up --detach`).

`up` prepares the warehouse, Meltano's system database and the alert outbox, starts the mail
sink (unless ALERTING_SMTP_HOST points elsewhere) and Airflow as the profile says (embedded:
LocalExecutor on SQLite; production: CeleryExecutor, Redis and N workers on PostgreSQL), creates
the pools, unpauses every DAG, and runs until SIGTERM or Ctrl-C. `up --detach` does that in the
background and returns once it is ready. State (URL, pid, profile) is in
`<airflow home>/orchestrator-up.json`; logs are in `<airflow home>/logs/` (one file per
component, task logs under `dag_id=...`), the service's own in `<airflow home>/logs/up.log`.
`orchestrator run` (run_airflow_cycle) uses a running service rather than start a second Airflow
on the same home.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from .. import settings
from ..config import OrchestrationConfig
from ..plan import plan_from_config
from .airflow_cycle import (
    AirflowCycle,
    cycle_dag_ids,
    local_mail_sink,
    prepare,
    run_cycle_in,
    start_airflow,
    tick_dag_id,
)
from .airflow_env import ADMIN_USER, local_secrets
from .client import AirflowClient
from .direct import prepare_warehouse


def state_path(config: OrchestrationConfig, env: dict[str, str]) -> Path:
    return config.airflow_home(env) / "orchestrator-up.json"


def read_state(config: OrchestrationConfig, env: dict[str, str]) -> dict | None:
    """The running service's state, or None (no state file, or its process has gone)."""
    try:
        state = json.loads(state_path(config, env).read_text())
        os.kill(state["pid"], 0)
        return state
    except (OSError, ValueError, KeyError):
        return None


def service_client(config: OrchestrationConfig, env: dict[str, str]) -> AirflowClient | None:
    """A client for the service's Airflow if one is up and ready on this home and answers."""
    state = read_state(config, env)
    if state is None or not state.get("ready"):
        return None
    try:
        httpx.get(f"{state['url']}/api/v2/monitor/health", timeout=5).raise_for_status()
    except httpx.HTTPError:
        return None
    return AirflowClient(state["url"], ADMIN_USER, local_secrets(Path(state["home"]))["admin_password"])


def run_airflow_cycle(
    config: OrchestrationConfig, *, env: dict[str, str] | None = None, new_day: bool = True, log=print
) -> AirflowCycle:
    """`orchestrator run`: one cycle on the Airflow of `orchestrator up` if it runs on this home,
    else on an Airflow started for it and stopped after."""
    env = dict(env if env is not None else config.profile.environment())
    env.setdefault(settings.AIRFLOW_HOME.name, str(config.airflow_home()))
    prepare_warehouse(config, env)
    plan = plan_from_config(config, cache_dir=None)
    if plan.errors:
        raise RuntimeError("the plan has errors; run `orchestrator check`:\n" + "\n".join(map(str, plan.errors)))
    if (client := service_client(config, env)) is not None:
        with client:
            log(f"==> using the Airflow of `orchestrator up` at {client.base_url}")
            prepare(client, plan)
            log(f"==> triggering {tick_dag_id(plan)}; following {len(cycle_dag_ids(plan))} DAGs")
            return run_cycle_in(client, config, env, plan, new_day=new_day, log=log)
    with local_mail_sink(config, env, log):
        home = config.airflow_home(env)
        log(f"==> starting Airflow in {home} (logs: {home / 'logs'})")
        with start_airflow(config, env, plan) as af:
            parts = ", ".join(f"{k} {v:.1f}s" for k, v in af.timings.items())
            log(f"    up in {af.startup_seconds:.1f}s at {af.url} (from the start: {parts})")
            prepare(af, plan)
            log(f"==> triggering {tick_dag_id(plan)}; following {len(cycle_dag_ids(plan))} DAGs")
            return run_cycle_in(af, config, env, plan, new_day=new_day, log=log)


def up(config: OrchestrationConfig, env: dict[str, str], *, detach: bool = False, log=print) -> int:
    if (state := read_state(config, env)) is not None:
        log(f"already up: {state['url']} (pid {state['pid']}); `orchestrator down` stops it")
        return 0
    if detach:
        return _up_detached(config, env, log)
    return _run(config, env, log)


def _up_detached(config: OrchestrationConfig, env: dict[str, str], log, timeout: float = 300) -> int:
    """`orchestrator up` in a new session in the background, logging to up.log; 0 once ready."""
    home = config.airflow_home(env)
    (home / "logs").mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "orchestrator.cli", "--config", str(config.path), "--profile", config.profile.name]
    with open(home / "logs" / "up.log", "ab") as out:
        proc = subprocess.Popen(
            [*argv, "up"],
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log(f"failed to start: see {home / 'logs' / 'up.log'}")
            return 1
        if (state := read_state(config, env)) is not None and state.get("ready"):
            log(
                f"up: {state['url']} (profile {state['profile']}, {state['executor']}, "
                f"pid {state['pid']}); logs in {home / 'logs'}"
            )
            return 0
        time.sleep(1)
    log(f"not ready after {timeout:.0f} s: see {home / 'logs' / 'up.log'}")
    return 1


def _run(config: OrchestrationConfig, env: dict[str, str], log) -> int:
    """The service in the foreground until SIGTERM or Ctrl-C (a component that exits ends it)."""
    env = dict(env)
    prepare_warehouse(config, env)
    plan = plan_from_config(config, cache_dir=None)
    # Stop cleanly on Ctrl-C and on SIGTERM (also when started in the background, where a shell
    # leaves SIGINT ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    path = state_path(config, env)
    with local_mail_sink(config, env, log), start_airflow(config, env, plan) as af:
        prepare(af, plan)
        state = {
            "url": af.url,
            "pid": os.getpid(),
            "profile": config.profile.name,
            "executor": af.executor,
            "workers": af.workers,
            "home": str(af.home),
            "components": {n: p.pid for n, p in af.processes.items()},
            "ready": True,
            "mail": settings.ALERTING_SMTP_HOST.get(env) + ":" + settings.ALERTING_SMTP_PORT.get(env),
        }
        path.write_text(json.dumps(state))
        log(
            f"up in {af.startup_seconds:.1f}s at {af.url} (user {ADMIN_USER}, password in "
            f"{af.home / 'local_secrets.json'}), {af.executor} with {af.workers} worker(s); logs in "
            f"{af.log_dir}. Ctrl-C or `orchestrator down` stops it."
        )
        sys.stdout.flush()
        try:
            while True:
                af.check_alive()
                time.sleep(2)
        except KeyboardInterrupt:
            pass
        finally:
            path.unlink(missing_ok=True)
    return 0


def down(config: OrchestrationConfig, env: dict[str, str], log=print, timeout: float = 60) -> int:
    state = read_state(config, env)
    if state is None:
        log("not running")
        return 0
    os.kill(state["pid"], signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(state["pid"], 0)
        except OSError:
            log(f"stopped (pid {state['pid']})")
            return 0
        time.sleep(0.5)
    log(f"pid {state['pid']} still running after {timeout:.0f}s")
    return 1


def status(config: OrchestrationConfig, env: dict[str, str], log=print) -> int:
    state = read_state(config, env)
    if state is None:
        log(f"not running (profile {config.profile.name}; `orchestrator up --detach` starts it)")
        return 3
    log(
        f"up at {state['url']} (profile {state['profile']}, {state['executor']}, {state['workers']} worker(s), "
        f"pid {state['pid']}); alert mail: {state['mail']}; logs: {state['home']}/logs"
    )
    try:
        health = httpx.get(f"{state['url']}/api/v2/monitor/health", timeout=5).json()
    except (httpx.HTTPError, ValueError) as exc:
        log(f"health: unreachable ({exc})")
        return 1
    for component, h in health.items():
        log(f"  {component:<16} {(h or {}).get('status', '-')}")
    return 0 if all((h or {}).get("status") == "healthy" for h in health.values()) else 1
