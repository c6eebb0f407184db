"""Run-form fields (Airflow Params) whose schemas name their JSON Schema dialect, draft 7.

Airflow validates a Param with `jsonschema.validate`, which first checks the schema itself
against its dialect's metaschema, and a schema that names none is checked against the newest,
2020-12: a metaschema of seven vocabularies joined by `$ref`s, each resolved at every check.
A DAG with a schedule validates every Param of its form when it is made (the DAG's `params`
validator), so each parse paid that check once per field per DAG: 100 checks in the dbt DAG
file of a 20-tag project, about a third of its DAGs' cost. Draft 7's metaschema is one schema,
about 3x cheaper to check.

The fields use only keywords both dialects read alike (`type`, `enum`, `format`, `title`,
`description`; Airflow's FormatChecker checks formats under either), so a value the form
refuses (or takes) under 2020-12 it refuses (or takes) under draft 7, at the parse and when the
API server validates a trigger's conf. Airflow's form reads the fields' keywords and ignores
`$schema`.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Param

JSON_SCHEMA_DIALECT = "http://json-schema.org/draft-07/schema#"


def field(default: Any, description: str | None = None, **schema: Any) -> Param:
    """`Param(default, description, **schema)`, its schema in JSON Schema draft 7."""
    return Param(default, description, schema={"$schema": JSON_SCHEMA_DIALECT, **schema})
