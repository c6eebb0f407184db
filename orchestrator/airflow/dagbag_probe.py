"""What Airflow's DagBag makes of a DAG folder, run by `check` in a subprocess of its own:

    python -m orchestrator.airflow.dagbag_probe DAGS_FOLDER RESULT_JSON

A subprocess, because the folder holds the user's own DAG files: their imports stay out of
`check`'s process, a file that hangs is bounded by the caller's timeout, and one that raises
SystemExit (which Airflow's importer, catching Exception, lets through) is one file's error here
instead of the silent end of `check`. The files are those Airflow lists (safe mode, .airflowignore),
each processed as collect_dags does. The result goes to a file: a DAG file may print to stdout.

    {"errors": {file: message}, "dags": {dag_id: file}}
"""

from __future__ import annotations

import json
import sys


def probe(folder: str) -> dict:
    from airflow.configuration import conf
    from airflow.dag_processing.dagbag import DagBag
    from airflow.dag_processing.importers import get_importer_registry

    safe_mode = conf.getboolean("core", "DAG_DISCOVERY_SAFE_MODE")
    bag = DagBag(dag_folder=folder, collect_dags=False)
    errors: dict[str, str] = {}
    for path in get_importer_registry().list_dag_files(folder, safe_mode=safe_mode):
        try:
            bag.process_file(path, only_if_updated=False, safe_mode=safe_mode)
        except SystemExit as exc:
            errors[path] = f"raises SystemExit({exc.code!r}) at import, which ends Airflow's parse of the file"
        except Exception as exc:  # noqa: BLE001 - what collect_dags logs and goes on from
            errors[path] = f"{type(exc).__name__}: {exc}"
    for file, message in bag.import_errors.items():
        errors.setdefault(file, message)
    return {"errors": errors, "dags": {dag_id: dag.fileloc for dag_id, dag in bag.dags.items()}}


if __name__ == "__main__":
    result = probe(sys.argv[1])
    with open(sys.argv[2], "w", encoding="utf-8") as out:
        json.dump(result, out)
