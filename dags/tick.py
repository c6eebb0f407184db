"""The tick: a cron DAG whose only job is to emit the Asset that starts every cycle."""

# Airflow parses only files that mention both "airflow" and "dag" (safe mode): this line does.
from orchestrator.airflow.dag_files import render_dags

globals().update(render_dags("tick"))
