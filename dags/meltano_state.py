"""The Meltano State DAG: read or overwrite Meltano state from the trigger form, safely."""

# Airflow parses only files that mention both "airflow" and "dag" (safe mode): this line does.
from orchestrator.airflow.dag_files import render_dags

globals().update(render_dags("meltano_state"))
