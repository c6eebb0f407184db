"""Errors of the orchestration plan that leave some DAGs out (e.g. a cycle between dbt DAGs that
the tags force): this file fails to import with the message, so Airflow's UI shows it, while
every other DAG renders from its own file. No DAG is defined here."""

# Airflow parses only files that mention both "airflow" and "dag" (safe mode): this line does.
from orchestrator.airflow.dag_files import raise_plan_errors

raise_plan_errors()
