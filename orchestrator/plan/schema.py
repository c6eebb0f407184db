"""The typed schema of `orchestration.yml` (pydantic, strict): every key, its type and its limits.

An unknown key, a wrong type (a quoted boolean or number included) or an impossible value is
an error naming the file and the key path, all errors at once, never a traceback. Defaults
here are the documented defaults.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

# Airflow's own rule for DAG and task ids, ASCII only (a DAG id is also a file-safe key).
ID = r"[A-Za-z0-9_.-]"
DAG_ID_RE = re.compile(rf"^{ID}{{1,250}}$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DOTTED_RE = re.compile(r"^[A-Za-z_][\w.]*(:[A-Za-z_]\w*)?$")
NO_INTERVAL = {"", "@once", "@manual", "@none"}
CRON_PRESETS = {  # what Airflow's CronTriggerTimetable accepts besides 5-field cron expressions
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@quarterly": "0 0 1 */3 *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@midnight": "0 0 * * *",
}


def cron_problem(expression: str) -> str | None:
    """Why Airflow would refuse this cron expression (None: it is valid). croniter is what Airflow
    validates with; it is a dependency of Airflow, imported only here and only when called."""
    from croniter import CroniterBadCronError, CroniterBadDateError, croniter

    try:
        croniter(CRON_PRESETS.get(expression, expression))
    except (CroniterBadCronError, CroniterBadDateError, ValueError, KeyError) as exc:
        return f"not a valid cron expression ({exc})"
    return None


def _cron(value: str) -> str:
    if problem := cron_problem(value):
        raise ValueError(problem)
    return value


def _dotted(value: str) -> str:
    if not DOTTED_RE.match(value):
        raise ValueError("must be a dotted path to a class, e.g. my_package.naming.MyTranslator")
    return value


Text = Annotated[str, StringConstraints(min_length=1)]
DagId = Annotated[str, StringConstraints(pattern=DAG_ID_RE.pattern)]
Prefix = Annotated[str, StringConstraints(pattern=rf"^{ID}{{0,100}}$")]
Cron = Annotated[str, AfterValidator(_cron)]
Minutes = Annotated[int, Field(ge=0)]
Seconds = Annotated[int, Field(ge=0)]
EnvName = Annotated[str, StringConstraints(pattern=ENV_NAME_RE.pattern)]
EnvValue = str | int | float | bool | None


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Tick(_Section):
    dag_id: DagId = "tick"
    cron: Cron = "0 0 * * *"
    asset: Text = "tick"


class CatchAll(_Section):
    enabled: bool = True
    dag_id: DagId = "dbt_untagged"


class Dbt(_Section):
    project_dir: Text = "dbt_project"
    manifest: Text | None = None  # default: <project_dir>/target/manifest.json
    profiles_dir: Text | None = None  # default: dbt's rules ($DBT_PROFILES_DIR, the project, ~/.dbt)
    mode: Literal["multi", "monolith"] = "multi"
    tags: list[Text] = []
    tag_prefix: Text | None = None
    dag_id_prefix: Prefix = "dbt_"
    catch_all: CatchAll = CatchAll()
    monolith_dag_id: DagId = "dbt_all"
    task_granularity: Literal["dag", "model"] = "dag"
    retry_from_failure: bool = True  # a retry builds only what failed (and what it skipped) the try before

    @field_validator("tags")
    @classmethod
    def _unique(cls, tags: list[str]) -> list[str]:
        if dupes := sorted({t for t in tags if tags.count(t) > 1}):
            raise ValueError(f"listed twice: {', '.join(dupes)}")
        return tags


class Meltano(_Section):
    project_dir: Text = "meltano"
    executable: Text | None = None  # default: `meltano` beside this Python, else on PATH
    dag_id_prefix: Prefix = "meltano_"
    state_dag_id: DagId = "meltano_state"
    tables: dict[Text, list[Text]] = {}


class Defaults(_Section):
    owner: Text = "data-platform"
    retries: Annotated[int, Field(ge=0, le=100)] = 2
    retry_delay_seconds: Seconds = 60
    max_retry_delay_seconds: Seconds = 600


class Lateness(_Section):
    after_minutes: Minutes | None = 240
    dags: dict[Text, Minutes | None] = {}


class Alerting(_Section):
    config: Text = "alerting.yml"
    dag_id: DagId = "alerting"
    cron: Cron = "*/5 * * * *"
    lateness: Lateness = Lateness()


class Paths(_Section):
    var: Text = "var"  # what the orchestrator writes: plan cache, dbt runs, state backups, local Airflow


class AirflowRun(_Section):
    executor: Literal["LocalExecutor", "CeleryExecutor"] = "LocalExecutor"
    workers: Annotated[int, Field(ge=0, le=64)] = 0
    metadata_db_url: str = ""
    broker_url: str = ""


class ProfileSchema(_Section):
    description: str = ""
    meltano_environment: Text
    loader: Text
    extractors: Annotated[list[Text], Field(min_length=1)]
    dbt_target: Text | None = None  # default: the target profiles.yml selects
    warehouse_uri: str = ""
    warehouse_pool: Text | None = None
    demo_data: Literal["files", "databases"] | None = None  # only this repo's demo: write its sources
    airflow: AirflowRun = AirflowRun()
    paths: dict[EnvName, Text] = {}  # env vars holding paths, relative to this file
    env: dict[EnvName, EnvValue] = {}

    @field_validator("extractors")
    @classmethod
    def _unique(cls, names: list[str]) -> list[str]:
        if dupes := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"listed twice: {', '.join(dupes)}")
        return names

    @model_validator(mode="after")
    def _celery(self) -> ProfileSchema:
        if self.airflow.executor == "CeleryExecutor" and not self.airflow.metadata_db_url.startswith("postgresql"):
            raise ValueError("airflow.executor CeleryExecutor needs airflow.metadata_db_url on PostgreSQL")
        if overlap := sorted(set(self.paths) & set(self.env)):
            raise ValueError(f"{', '.join(overlap)}: set in both `paths` and `env`")
        return self


class OrchestrationFile(_Section):
    default_profile: Text | None = None
    translator: Annotated[str, AfterValidator(_dotted)] | None = None
    tick: Tick = Tick()
    dbt: Dbt = Dbt()
    meltano: Meltano = Meltano()
    defaults: Defaults = Defaults()
    alerting: Alerting = Alerting()
    paths: Paths = Paths()
    profiles: Annotated[dict[Text, ProfileSchema], Field(min_length=1)]

    @model_validator(mode="after")
    def _references(self) -> OrchestrationFile:
        if self.default_profile is not None and self.default_profile not in self.profiles:
            raise ValueError(
                f"default_profile {self.default_profile!r} is not one of the profiles "
                f"({', '.join(sorted(self.profiles))})"
            )
        ids = {
            "tick.dag_id": self.tick.dag_id,
            "alerting.dag_id": self.alerting.dag_id,
            "meltano.state_dag_id": self.meltano.state_dag_id,
        }
        seen: dict[str, str] = {}
        for key, dag_id in ids.items():
            if dag_id in seen:
                raise ValueError(f"{key} and {seen[dag_id]} are both {dag_id!r}: DAG ids must differ")
            seen[dag_id] = key
        return self


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("function-after", "function-before") or str(part).startswith(("function-", "constrained-")):
            continue
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _message(err: Any, model: type[BaseModel] | None = None) -> str:
    kind, msg = err["type"], err["msg"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required"
    if kind == "bool_type":
        return f"must be true or false (unquoted), got {err.get('input')!r}"
    if kind in ("int_type", "int_from_float", "int_parsing"):
        return f"must be a whole number (unquoted), got {err.get('input')!r}"
    if kind == "string_pattern_mismatch":
        return (
            f"{err.get('input')!r} is not allowed here: letters, digits, _ . - only (and a letter or _ first "
            "for a variable name)"
        )
    if kind == "value_error":
        return msg.removeprefix("Value error, ")
    return f"{msg}, got {err.get('input')!r}" if "input" in err and not isinstance(err["input"], dict) else msg


def _known_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str] | None:
    """The keys allowed where an unknown key was found (for the error message)."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int) or not isinstance(current, type) or not issubclass(current, BaseModel):
            current = None
            break
        field = current.model_fields.get(str(part))
        if field is None:  # a dict of sections (profiles.<name>)
            current = ProfileSchema if current is OrchestrationFile and part == "profiles" else None
            continue
        annotation = field.annotation
        current = (
            annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel)
            else (ProfileSchema if part == "profiles" else None)
        )
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted(current.model_fields)
    return None


def validation_errors(exc: ValidationError, model: type[BaseModel]) -> list[str]:
    """`key.path: message` for each error, as users read them."""
    lines = []
    for err in exc.errors():
        message = _message(err, model)
        if err["type"] == "extra_forbidden" and (known := _known_keys(model, err["loc"])):
            message += f" (expected one of {', '.join(known)})"
        lines.append(f"{_path(err['loc'])}: {message}")
    return lines


def parse_orchestration(data: Any, path: Path) -> OrchestrationFile:
    from ..profiles import ConfigError

    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return OrchestrationFile.model_validate(data)
    except ValidationError as exc:
        lines = validation_errors(exc, OrchestrationFile)
        raise ConfigError(
            f"{path}: "
            + ("\n  ".join(lines) if len(lines) == 1 else f"{len(lines)} problems:\n  " + "\n  ".join(lines))
        ) from None
