"""One DAG per Meltano source (extractor, or Meltano schedule), from meltano.yml; each emits an
Asset per warehouse table it loads."""

# Airflow parses only files that mention both "airflow" and "dag" (safe mode): this line does.
from orchestrator.airflow.dag_files import render_dags

globals().update(render_dags("meltano"))
