"""Running it here: a real Airflow as local processes (launcher, service, one cycle and its report),
the direct run without Airflow, and warehouse queries for the reports."""
