"""The typed schema of `orchestration.yml` (pydantic, strict): every key, its type and its limits.

An unknown key, a wrong type (a quoted boolean or number included) or an impossible value is
an error naming the file and the key path, all errors at once, never a traceback. Defaults
here are the documented defaults.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from croniter import CroniterBadCronError, CroniterBadDateError, croniter
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from alerting.routing.messages import (
    EXPECTED,
    bound,
    first_errors,
    got,
    like_it,
    more_problems,
    path_str,
    type_name,
    unknown_key,
)

from .errors import ConfigError

# Airflow's own rule for DAG and task ids, ASCII only (a DAG id is also a file-safe key).
ID = r"[A-Za-z0-9_.-]"
DAG_ID_RE = re.compile(rf"{ID}{{1,250}}")  # use with fullmatch
ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # a shell variable name (POSIX); use with fullmatch
DOTTED_RE = re.compile(r"[A-Za-z_][\w.]*(:[A-Za-z_]\w*)?")
RESERVED_ASSET_NAMES = ("self", "context")  # Airflow refuses these Asset names
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
    validates with (a dependency of Airflow)."""
    try:
        croniter(CRON_PRESETS.get(expression, expression))
    except (CroniterBadCronError, CroniterBadDateError, ValueError, KeyError) as exc:
        return f"not a valid cron expression ({exc})"
    return None


def _cron(value: str) -> str:
    if problem := cron_problem(value):
        raise ValueError(f"{value!r} is {problem}")
    return value


def _dotted(value: str) -> str:
    if not DOTTED_RE.fullmatch(value):
        raise ValueError(f"{value!r}: expected a dotted path to a class, e.g. my_package.naming.MyTranslator")
    return value


def _dag_id(value: str) -> str:
    if not DAG_ID_RE.fullmatch(value):
        raise ValueError(f"{value!r} is not a valid Airflow DAG id: 1 to 250 of letters, digits, _ . - (no spaces)")
    return value


def _prefix(value: str) -> str:
    if value and not re.fullmatch(rf"{ID}{{1,100}}", value):
        raise ValueError(
            f"{value!r} is not a valid DAG id prefix: up to 100 of letters, digits, _ . - (no spaces or slashes)"
        )
    return value


def _env_name(value: str) -> str:
    if not ENV_NAME_RE.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a shell variable name: letters, digits and _ only, not starting with a digit"
        )
    return value


def _env_value(value: Any) -> Any:
    if isinstance(value, str):
        return _no_nul(value)
    if value is None or isinstance(value, int | float | bool):
        return value
    raise ValueError(f"expected a string, a number, true/false or null, got {got(value)}")


def _no_nul(value: str) -> str:
    if "\0" in value:
        raise ValueError("holds a NUL byte (\\0), which no environment variable or path can")
    return value


def _asset_name(value: str) -> str:
    if value.strip() != value or value in RESERVED_ASSET_NAMES or len(value) > 1500:
        raise ValueError(
            f"{value!r} is not a valid Airflow Asset name: at most 1500 characters, no surrounding spaces, "
            f"not {' or '.join(RESERVED_ASSET_NAMES)}"
        )
    return value


def _sequence(value: Any) -> Any:
    """YAML reads a sequence as a list; the configuration keeps it as a tuple (frozen, like the rest)."""
    if isinstance(value, list | tuple):
        return tuple(value)
    raise PydanticCustomError("list_type", "Input should be a valid list")


def at_key(key: str, message: str) -> PydanticCustomError:
    """The error of a model validator about one of its keys (`key`: dotted, below the model)."""
    return PydanticCustomError("at_key", "{message}", {"key": key, "message": message})


Text = Annotated[str, StringConstraints(min_length=1)]
DagId = Annotated[str, AfterValidator(_dag_id)]
Prefix = Annotated[str, AfterValidator(_prefix)]
Cron = Annotated[str, AfterValidator(_cron)]
# At most a year: a bound a user can read, far inside what a timedelta holds (1e13 minutes overflowed
# Python's timedelta in a DAG file, with no key named).
YEAR_MINUTES = 366 * 24 * 60
Minutes = Annotated[int, Field(ge=0, le=YEAR_MINUTES)]
Seconds = Annotated[int, Field(ge=0, le=YEAR_MINUTES * 60)]
EnvName = Annotated[str, AfterValidator(_env_name)]
EnvValue = Annotated[str | int | float | bool | None, PlainValidator(_env_value)]
AssetName = Annotated[str, StringConstraints(min_length=1), AfterValidator(_asset_name)]
Texts = Annotated[tuple[Text, ...], BeforeValidator(_sequence)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Tick(_Section):
    dag_id: DagId = "tick"
    cron: Cron = "0 0 * * *"
    asset: AssetName = "tick"


class CatchAll(_Section):
    enabled: bool = True
    dag_id: DagId = "dbt_untagged"


class CycleWait(_Section):
    """A dbt DAG builds only on inputs of one cycle (orchestrator/plan/cycles.py): it waits until
    they agree, for at most `timeout_minutes`; then a `late` alert names the stale inputs and nothing
    is built. A DAG of one task waits in its build task (rescheduled between looks, at least 10 s
    apart: airflow/cycle_wait.py); a per-model DAG in a first sensor task, which `mode` is for."""

    enabled: bool = True
    timeout_minutes: Annotated[int, Field(ge=1, le=366 * 24 * 60)] = 360
    poke_seconds: Annotated[int, Field(ge=1, le=24 * 3600)] = 60
    # a per-model DAG's sensor. poke: it holds one worker slot (not the warehouse pool's) between looks.
    # reschedule frees it, but Airflow 3.2-3.3 can fail a reschedule-mode sensor when one look's
    # executor result is processed after the next look was queued (apache/airflow#71172): seen here
    # under load as "Server indicated the task shouldn't be running anymore", then a 409.
    mode: Literal["poke", "reschedule"] = "poke"


class Dbt(_Section):
    project_dir: Text = "dbt_project"
    manifest: Text | None = None  # default: <project_dir>/target/manifest.json
    profiles_dir: Text | None = None  # default: dbt's rules ($DBT_PROFILES_DIR, the project, ~/.dbt)
    mode: Literal["multi", "monolith"] = "multi"
    tags: Texts = ()
    tag_prefix: Text | None = None
    dag_id_prefix: Prefix = "dbt_"
    catch_all: CatchAll = CatchAll()
    monolith_dag_id: DagId = "dbt_all"
    task_granularity: Literal["dag", "model"] = "dag"
    retry_from_failure: bool = True  # a retry builds only what failed (and what it skipped) the try before
    # a cycle between tag DAGs that the tags force: split the tags on it into stages, or refuse it
    on_forced_cycle: Literal["split", "error"] = "split"
    # changed: a run builds only what is downstream of the inputs that brought new rows (README,
    # "dbt work follows new data"); all: every run builds the DAG's whole selection
    build: Literal["changed", "all"] = "all"
    cycle_wait: CycleWait = CycleWait()

    @field_validator("tags")
    @classmethod
    def _unique(cls, tags: tuple[str, ...]) -> tuple[str, ...]:
        if dupes := sorted({t for t in tags if tags.count(t) > 1}):
            raise ValueError(f"listed twice: {', '.join(dupes)}")
        return tags


ReconcileMode = Literal["warn", "fail", "off"]


class Meltano(_Section):
    project_dir: Text = "meltano"
    executable: Text | None = None  # default: `meltano` beside this Python, else on PATH
    dag_id_prefix: Prefix = "meltano_"
    state_dag_id: DagId = "meltano_state"
    tables: dict[Text, Texts] = {}
    # Rows the tap emitted vs rows the loader wrote, per stream, after each run (README, "Reliability").
    reconcile: ReconcileMode = "warn"
    reconcile_extractors: dict[Text, ReconcileMode] = {}  # per extractor, over `reconcile`

    def reconcile_mode(self, extractor: str) -> ReconcileMode:
        return self.reconcile_extractors.get(extractor, self.reconcile)


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
    dags: Annotated[Text, AfterValidator(_no_nul)] | None = None  # the DAG folder init wrote: check's default


class AirflowRun(_Section):
    executor: Literal["LocalExecutor", "CeleryExecutor"] = "LocalExecutor"
    workers: Annotated[int, Field(ge=0, le=64)] = 0
    metadata_db_url: str = ""
    broker_url: str = ""


class ProfileSchema(_Section):
    description: str = ""
    meltano_environment: Text
    loader: Text
    extractors: Annotated[Texts, Field(min_length=1)]
    dbt_target: Text | None = None  # default: the target profiles.yml selects
    warehouse_uri: str = ""
    warehouse_pool: Text | None = None
    demo_data: Literal["files", "databases"] | None = None  # only this repo's demo: write its sources
    airflow: AirflowRun = AirflowRun()
    paths: dict[EnvName, Annotated[Text, AfterValidator(_no_nul)]] = {}  # env vars holding paths, relative to this file
    env: dict[EnvName, EnvValue] = {}

    @field_validator("extractors")
    @classmethod
    def _unique(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        if dupes := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"listed twice: {', '.join(dupes)}")
        return names

    @model_validator(mode="after")
    def _celery(self) -> ProfileSchema:
        if self.airflow.executor == "CeleryExecutor" and not self.airflow.metadata_db_url.startswith("postgresql"):
            raise at_key(
                "airflow.metadata_db_url",
                "airflow.executor CeleryExecutor needs a PostgreSQL metadata database (postgresql+...://), "
                f"got {self.airflow.metadata_db_url or 'none'!r}",
            )
        if overlap := sorted(set(self.paths) & set(self.env)):
            also = f" (and {', '.join(overlap[1:])})" if overlap[1:] else ""
            raise at_key(f"env.{overlap[0]}", f"set in both `paths` and `env`{also}: keep one")
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
            raise at_key(
                "default_profile",
                f"{self.default_profile!r} names no profile (the profiles: {', '.join(sorted(self.profiles))})",
            )
        ids = {
            "tick.dag_id": self.tick.dag_id,
            "alerting.dag_id": self.alerting.dag_id,
            "meltano.state_dag_id": self.meltano.state_dag_id,
        }
        seen: dict[str, str] = {}
        for key, dag_id in ids.items():
            if dag_id in seen:
                raise at_key(key, f"{dag_id!r} is also {seen[dag_id]}: DAG ids must differ")
            seen[dag_id] = key
        return self


# ------------------------------------------------------------------ error messages
# The same wording as alerting.yml's (alerting/routing/messages.py): `key.path: message, got VALUE (type)`.

_SCALARS = ("bool_type", "int_type", "int_parsing", "float_type")  # a quoted value: say so


def _message(err: Any, root: type[BaseModel]) -> str:
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    if kind == "extra_forbidden":
        return unknown_key(root, tuple(err["loc"]))
    if kind in ("value_error", "at_key"):
        return str(ctx.get("message") or ctx.get("error") or err["msg"]).removeprefix("Value error, ")
    if kind == "missing":
        return "required"
    if kind == "literal_error":
        message = f"expected {ctx.get('expected', '')}"
    elif kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        message = bound(kind, ctx)
    else:
        message = EXPECTED.get(kind, err["msg"])
        if kind in _SCALARS and isinstance(value, str):
            message += " (unquoted: YAML reads a quoted value as a string)"
    return message if isinstance(value, dict) else f"{message}, got {got(value)}"


def validation_errors(exc: ValidationError, model: type[BaseModel]) -> list[str]:
    """`key.path: message` for each error, as users read them."""
    lines = []
    shown, more = first_errors(exc)  # bounded: a list of 30,000 wrong items is one mistake
    for err in shown:
        loc = tuple(err["loc"])
        if err["type"] == "at_key":
            loc += tuple(str((err.get("ctx") or {}).get("key", "")).split("."))
        lines.append(f"{path_str(loc)}: {_message(err, model)}{like_it(err)}")
    return lines + ([more_problems(more)] if more else [])


Model = TypeVar("Model", bound=BaseModel)


def validated(model: type[Model], data: Any, path: Path) -> Model:
    """`data` (a file's top level) as `model`; a ConfigError with one line per problem, each naming
    the file and the key."""
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type_name(data)}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError("\n".join(f"{path}: {line}" for line in validation_errors(exc, model))) from None
