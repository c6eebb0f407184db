"""One dbt DAG per orchestration tag (or one monolith), from dbt's target/manifest.json; each is
scheduled on exactly the Assets its models read."""

# Airflow parses only files that mention both "airflow" and "dag" (safe mode): this line does.
from orchestrator.airflow.dag_files import render_dags

globals().update(render_dags("dbt"))
