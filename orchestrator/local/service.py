"""`orchestrator up | down | status`: the profile's Airflow as a long-running local service.

`up` prepares the warehouse, Meltano's system database and the alert outbox, starts the mail
sink (unless ALERTING_SMTP_HOST points elsewhere) and Airflow as the profile says (embedded:
LocalExecutor on SQLite; production: CeleryExecutor, Redis and N workers on PostgreSQL), creates
the pools, unpauses every DAG, and runs until SIGTERM or Ctrl-C. `up --detach` does that in the
background and returns once it is healthy. State (URL, pid, logs) is in
`<airflow home>/orchestrator-up.json`; logs are in `<airflow home>/logs/` (one file per
component, task logs under `dag_id=...`), the service's own in `<airflow home>/logs/up.log`.
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

from ..plan import plan_from_config
from ..plan.config import OrchestrationConfig
from .airflow_cycle import airflow_home, local_airflow, local_mail_sink, prepare


def _state_path(env: dict[str, str]) -> Path:
    return airflow_home(env) / "orchestrator-up.json"


def read_state(env: dict[str, str]) -> dict | None:
    try:
        state = json.loads(_state_path(env).read_text())
        os.kill(state["pid"], 0)
        return state
    except (OSError, ValueError, KeyError):
        return None


def up(config: OrchestrationConfig, env: dict[str, str], *, detach: bool = False, log=print) -> int:
    from .direct import prepare_warehouse

    if (state := read_state(env)) is not None:
        log(f"already up: {state['url']} (pid {state['pid']}); `orchestrator down` stops it")
        return 0
    if detach:
        home = airflow_home(env)
        (home / "logs").mkdir(parents=True, exist_ok=True)
        argv = [
            sys.executable,
            "-m",
            "orchestrator.cli",
            "--config",
            str(config.path),
            "--profile",
            config.profile.name,
            "up",
        ]
        with open(home / "logs" / "up.log", "ab") as out:
            proc = subprocess.Popen(
                argv,
                env={**os.environ, **env},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                log(f"failed to start: see {home / 'logs' / 'up.log'}")
                return 1
            if (state := read_state(env)) is not None and state.get("ready"):
                log(
                    f"up: {state['url']} (profile {state['profile']}, {state['executor']}, "
                    f"pid {state['pid']}); logs in {home / 'logs'}"
                )
                return 0
            time.sleep(1)
        log(f"not healthy after 300 s: see {home / 'logs' / 'up.log'}")
        return 1

    env = dict(env)
    prepare_warehouse(config.profile, env)
    plan = plan_from_config(config, cache_dir=None)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with local_mail_sink(env, log):
        af = local_airflow(config, env)
        with af.start():
            prepare(af, plan)
            state = {
                "url": af.url,
                "pid": os.getpid(),
                "profile": config.profile.name,
                "executor": af.executor,
                "workers": af.workers,
                "home": str(af.home),
                "ready": True,
                "mail": env.get("ALERTING_SMTP_HOST", "") + ":" + env.get("ALERTING_SMTP_PORT", ""),
            }
            _state_path(env).write_text(json.dumps(state))
            log(
                f"up at {af.url} (user admin, password in {af.home / 'local_secrets.json'}), "
                f"{af.executor} with {af.workers} worker(s); Ctrl-C or `orchestrator down` stops it"
            )
            sys.stdout.flush()
            try:
                while True:
                    af._check_alive()
                    time.sleep(2)
            except KeyboardInterrupt:
                pass
            finally:
                _state_path(env).unlink(missing_ok=True)
    return 0


def down(env: dict[str, str], log=print, timeout: float = 60) -> int:
    state = read_state(env)
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
    state = read_state(env)
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
