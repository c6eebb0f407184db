"""Alerting housekeeping: redelivers alerts Slack or SMTP could not take, and alerts about dbt
DAGs that have not run in time after the tick. It also checks alerting.yml: a broken routing
file shows up as this file's import error (Airflow DAG file)."""

from orchestrator.airflow.dag_files import render_dags

globals().update(render_dags("alerting"))
