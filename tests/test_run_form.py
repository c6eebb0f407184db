"""The run forms' fields (Airflow Params) name JSON Schema draft 7 (orchestrator/airflow/form.py, a
parse cost), and refuse and take the same values as under the 2020-12 default: when a DAG is made,
and when the API server validates a trigger's conf against the serialized DAG."""

from __future__ import annotations

import pytest

from orchestrator.airflow.form import JSON_SCHEMA_DIALECT
from orchestrator.config import REPO_ROOT, load_config
from orchestrator.plan import plan_from_config

# per form field: values the form must take, values it must refuse
CASES = {
    "select": (["", "fct_orders+", None], [3, ["a"], {"a": 1}]),
    "exclude": ([None, "tag:daily"], [False, 1.5]),
    "full_refresh": ([True, False], ["yes", None, 0]),
    "vars": ([{}, {"start_date": "2024-01-01"}], ["{}", [1], None]),
    "retry_from_failure": ([True], ["true", None]),
    # jsonschema checks "date-time" only with rfc3339-validator installed (it is not), under either
    # dialect: the alerting task parses it (datetime.fromisoformat)
    "as_of": ([None, "2026-12-07T10:00:00+00:00", "yesterday"], [5, ["2026-12-07"]]),
    "dry_run": ([False], ["no"]),
    "state_json": (["{}"], [{}, None]),
    "action": (["get", "clear"], ["drop", None]),
}


@pytest.fixture(scope="module")
def form_dags():
    from airflow.dag_processing.dagbag import DagBag

    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("ORCHESTRATOR_CACHE_DIR", "")  # parse the files afresh
        monkeypatch.setenv("PIPELINE_PROFILE", "embedded")
        monkeypatch.delenv("ORCHESTRATION_CONFIG", raising=False)  # the repository's; a DAG file may pin it
        bag = DagBag(dag_folder=str(REPO_ROOT / "dags"))
    assert not bag.import_errors
    dags = [d for d in bag.dags.values() if d.params]
    assert len(dags) >= 3  # the dbt DAGs, the alerting DAG's `as_of`, the Meltano state DAG
    return dags


def _refused_by_2020_12(schema: dict, value) -> bool:
    from jsonschema import Draft202012Validator, FormatChecker

    default = {k: v for k, v in schema.items() if k != "$schema"}  # what the schema was before
    return any(Draft202012Validator(default, format_checker=FormatChecker()).iter_errors(value))


def test_every_form_field_names_draft_7_and_judges_values_as_2020_12_does(form_dags):
    import copy

    from airflow.sdk.exceptions import ParamValidationError

    seen = set()
    for dag in form_dags:
        for key, param in dag.params.items():
            assert next(iter(param.schema)) == "$schema" and param.schema["$schema"] == JSON_SCHEMA_DIALECT
            good, bad = CASES.get(key, ([], []))
            seen |= {key} if good else set()
            for value, refused in [(v, False) for v in good] + [(v, True) for v in bad]:
                assert _refused_by_2020_12(param.schema, value) == refused, (key, value)
                params = copy.deepcopy(dag.params)  # the SDK's ParamsDict: setting a value validates it
                if refused:
                    with pytest.raises(ParamValidationError):
                        params[key] = value
                else:
                    params[key] = value
    assert seen == CASES.keys()


def test_a_bad_trigger_conf_is_refused_by_the_serialized_dag(form_dags):
    """What the API server does with a trigger from the form: the serialized DAG's params, merged
    with the conf, validated."""
    from airflow.sdk.exceptions import ParamValidationError
    from airflow.serialization.serialized_objects import DagSerialization

    for dag in form_dags:
        served = DagSerialization.from_dict(DagSerialization.to_dict(dag))
        assert served.params.validate()  # the defaults: a scheduled run, or Trigger untouched
        for key in served.params:
            good, bad = CASES.get(key, ([], []))
            for value in good:
                served.params.deep_merge({key: value}).validate()
            for value in bad:
                with pytest.raises(ParamValidationError, match=key):
                    served.params.deep_merge({key: value}).validate()


def test_the_dbt_tasks_callable_hands_the_whole_context_to_dbt_task(form_dags, monkeypatch):
    """The dbt DAG file names dbt_entry.dbt_build (dbt_task imported where it runs): the task gets
    Airflow's context and what it reads of the plan (its dbt arguments, relations, outlets, owners,
    nodes) as dbt_task.dbt_build itself would, none of which its DAG file hands over."""
    from orchestrator.airflow import dbt_entry, dbt_task

    got = []
    monkeypatch.setattr(dbt_task, "dbt_build", lambda **kw: got.append(kw) or {"ok": 1})
    task = next(t for d in form_dags if "dbt" in d.tags for t in d.tasks if t.task_id != "wait_for_cycle")
    assert task.python_callable.__name__ == "dbt_build"
    assert set(task.op_kwargs) <= {"plan_task", "tag", "cycle_wait", "cycle_task", "config_path", "profile"}
    context = {**task.op_kwargs, "params": {"select": ""}, "ti": object(), "run_id": "r", "outlets": [object()]}
    kwargs = task.determine_kwargs(context)  # what PythonOperator.execute hands the callable
    assert task.python_callable(**kwargs) == {"ok": 1}
    plan = dbt_entry.task_arguments(
        *task.op_kwargs["plan_task"], task.op_kwargs["config_path"], task.op_kwargs["profile"]
    )
    # what the plan says wins over Airflow's context (its `outlets` are Asset objects), as op_kwargs do
    assert got == [{**{k: v for k, v in context.items() if k != "plan_task"}, **plan}]
    spec = plan_from_config(load_config(task.op_kwargs["config_path"]), kinds=("dbt",)).dag(task.dag_id)
    assert plan["nodes"] == [*spec.models, *spec.tests] and plan["args"] == list(spec.tasks[0].args)
    assert plan["outlets"] == {a.name: a.uri for a in task.outlets}
