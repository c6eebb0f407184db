"""One pipeline cycle on the running docker-compose stack, then one provoked alert.

Run inside a container of the stack (scripts/compose_smoke.sh does it in the Celery worker:
`docker compose exec airflow-worker python /opt/airflow/project/docker/compose_cycle.py`), where
the production profile's variables and the service names resolve. Through the api-server's REST
API, with the orchestrator's own client (what `orchestrator run` uses on a local Airflow):

1. waits until every DAG of the plan is parsed, then unpauses them (as `orchestrator up` does);
2. triggers `tick` and follows every Meltano and dbt DAG its Asset events set off, until each has
   run (the same report `orchestrator run` prints); the sources hold what demo-seed wrote;
3. provokes one alert: the Meltano State DAG asked to write a state without `singer_state`, which
   it refuses (a failed task: its failure callback sends the alert e-mail to the mail sink).

Prints the report and, last, one line of JSON (cycle seconds, DAG states, the failed run) for the
script. Exit 0 when every DAG of the cycle succeeded and the provoked run failed, else 1. The
warehouse rows and the e-mail are checked by the script itself, from outside the stack.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from orchestrator.local.airflow_cycle import cycle_dag_ids, prepare, run_cycle_in
from orchestrator.local.client import AirflowClient
from orchestrator.plan import load_config, plan_from_config

API_URL = os.environ.get("COMPOSE_API_URL", "http://airflow-apiserver:8080")
PASSWORDS = Path("/opt/airflow/auth/simple_auth_manager_passwords.json")  # written by airflow-init


def provoke_alert(client: AirflowClient, state_id: str) -> dict:
    """A refused state write: the Meltano State DAG has no retries, so it fails (and alerts) at once."""
    conf = {"action": "set", "state_id": state_id, "state_json": '{"no_singer_state": {}}', "dry_run": False}
    run_id = client.trigger("meltano_state", conf)
    [run] = client.wait_for_runs(
        "meltano_state", lambda r: r["dag_run_id"] == run_id and r["state"] in ("success", "failed"), timeout=300
    )
    return {"dag_id": "meltano_state", "run_id": run_id, "state": run["state"]}


def main() -> int:
    config = load_config()
    env = dict(os.environ)
    plan = plan_from_config(config, cache_dir=None)
    if plan.errors:
        print("the plan has errors:", *plan.errors, sep="\n  ", file=sys.stderr)
        return 1
    user, password = next(iter(json.loads(PASSWORDS.read_text()).items()))
    with AirflowClient(API_URL, user, password) as client:
        prepare(client, plan)
        print(f"==> triggering {config.tick_dag_id}; following {len(cycle_dag_ids(plan))} DAGs", flush=True)
        started = time.monotonic()
        cycle = run_cycle_in(
            client, config, env, plan, new_day=False, timeout=1200, log=lambda line: print(line, flush=True)
        )
        cycle_s = time.monotonic() - started
        print(cycle.summary(), flush=True)
        [state_dag] = plan.of_kind("meltano_state")
        print("==> provoking an alert: a state write the Meltano State DAG refuses", flush=True)
        alert = provoke_alert(client, state_dag.state_ids[0])
        print(f"    {alert['dag_id']} run {alert['run_id']}: {alert['state']}", flush=True)
    result = {
        "cycle_s": round(cycle_s, 1),
        "dags": {r.dag_id: r.state for r in cycle.reports},
        "alert_run": alert,
    }
    print(json.dumps(result))
    return 0 if cycle.ok and alert["state"] == "failed" else 1


if __name__ == "__main__":
    sys.exit(main())
