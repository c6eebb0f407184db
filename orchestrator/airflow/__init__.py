"""The Airflow layer: renders the plan into DAG objects, and the callables their tasks run."""
