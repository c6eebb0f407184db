"""Read a Meltano project the way Meltano does, without running Meltano (1-3 s a call).

Covers what the plan needs: plugins (with `inherit_from`), `include_paths` files, environment
overrides and `state_id_suffix`, `select` rules, `load_schema`, schedules and jobs. Every key we
read is type-checked (a typed schema; the many keys we do not read are Meltano's business), and
a wrong shape is an error naming the file and the key.
"""

from __future__ import annotations

import difflib
import glob
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar

from alerting.routing.messages import got
from pydantic import BaseModel, ConfigDict, Field, PlainValidator, ValidationError, model_validator

from ..config import ConfigError, load_yaml
from ..config.schema import at_key, validation_errors
from .relations import default_stream_table

# Loader settings that name the target schema (pipelinewise and SDK targets).
_SCHEMA_SETTINGS = ("default_target_schema", "schema", "target_schema")
_LOAD_SCHEMA_VAR = re.compile(r"\$\{?MELTANO_EXTRACT__LOAD_SCHEMA\}?")
_GLOB = re.compile(r"[*?\[]")
_VAR = re.compile(r"\$\{(\w+)\}|\$([A-Z][A-Z0-9_]*)")


class MeltanoProjectError(ConfigError):
    """meltano.yml (or an included file) cannot be used; the message names the file."""


# ------------------------------------------------------------------ the schema of what we read
# Meltano accepts many more keys than we read: those pass. The keys we read are typed; a key that
# Meltano does not know either and that looks like one of ours (`schedule:`, `load-schema:`) is a
# typo that would silently change the plan, so it is an error ("did you mean ...?"). The sections
# whose keys Meltano fixes (the plugin types, a schedule, a job) refuse any unknown key.


# Keys Meltano itself knows (meltano.schema.json and its settings.yml, Meltano 4.4).
def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_MELTANO_TOP = _words(
    "annotations auto_install cli database_max_retries database_retry_timeout database_uri default_environment "
    "disable_tracking elt env environments experimental ff hub_api_root hub_url hub_url_auth include_paths jobs "
    "plugins project_id project_readonly python requires_meltano schedules send_anonymous_usage_stats snowplow "
    "state_backend venv version"
)
_MELTANO_PLUGIN = _words(
    "annotations args capabilities catalog command commands config container_spec description dialect docs "
    "entrypoint env executable ext_repo image inherit_from label load_schema log_parser logo_url mappings metadata "
    "name namespace package_name pip_url plugin_type ports python repo requires requires_meltano schema select "
    "select_filter settings settings_group_validation state use_cached_catalog variant vars volumes"
)
_MELTANO_ENVIRONMENT = frozenset({"annotations", "config", "env", "name", "state_id_suffix"})


class _Read(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    _meltano_keys: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _typos(cls, data: Any) -> Any:
        if isinstance(data, dict):
            ours = list(cls.model_fields)
            for key in data:
                unknown = isinstance(key, str) and key not in cls.model_fields and key not in cls._meltano_keys
                if unknown and (close := difflib.get_close_matches(key, ours, n=1, cutoff=0.8)):
                    raise at_key(
                        key,
                        f"unknown key (did you mean {close[0]}? Meltano would ignore it, and so would the plan)",
                    )
        return data


class _Fixed(BaseModel):
    """A section whose keys Meltano fixes: an unknown key is an error."""

    model_config = ConfigDict(extra="forbid", strict=True)


class _PluginRef(_Read):
    name: str = Field(min_length=1)


class _Plugin(_PluginRef):
    _meltano_keys = _MELTANO_PLUGIN
    namespace: str | None = None
    inherit_from: str | None = None
    load_schema: str | None = None
    select: list[str] | None = None
    config: dict[str, Any] | None = None
    pip_url: str | None = None
    executable: str | None = None


_Others = list[dict[str, Any]] | None  # plugin types the plan does not read


class _Plugins(_Fixed):
    extractors: list[_Plugin] | None = None
    loaders: list[_Plugin] | None = None
    transforms: _Others = None
    orchestrators: _Others = None
    transformers: _Others = None
    files: _Others = None
    utilities: _Others = None
    mappers: _Others = None
    mappings: _Others = None


class _Schedule(_Fixed):
    name: str = Field(min_length=1)
    interval: str | None = None
    extractor: str | None = None
    loader: str | None = None
    transform: str | None = None
    job: str | None = None
    start_date: Any = None
    env: dict[str, Any] | None = None
    annotations: dict[str, Any] | None = None


def _tasks(value: Any) -> Any:
    """Meltano's job `tasks`: one string, or a list of strings and lists of strings."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(
        isinstance(t, str) or (isinstance(t, list) and all(isinstance(p, str) for p in t)) for t in value
    ):
        return value
    raise ValueError(f"expected a string or a list of strings (and lists of strings), got {got(value)}")


class _Job(_Fixed):
    name: str = Field(min_length=1)
    tasks: Annotated[list[str | list[str]], PlainValidator(_tasks)] = []
    annotations: dict[str, Any] | None = None


class _EnvPlugins(_Read):
    extractors: list[dict[str, Any]] | None = None
    loaders: list[dict[str, Any]] | None = None


class _EnvConfig(_Read):
    plugins: _EnvPlugins | None = None


class _Environment(_Read):
    _meltano_keys = _MELTANO_ENVIRONMENT
    name: str = Field(min_length=1)
    config: _EnvConfig | None = None
    state_id_suffix: str | None = None


class MeltanoFile(_Read):
    _meltano_keys = _MELTANO_TOP
    include_paths: list[str] | None = None
    plugins: _Plugins | None = None
    schedules: list[_Schedule] | None = None
    jobs: list[_Job] | None = None
    environments: list[_Environment] | None = None


# ------------------------------------------------------------------ the project


@dataclass(frozen=True)
class Plugin:
    name: str
    kind: str  # extractors | loaders
    namespace: str
    config: dict
    select: tuple[str, ...]
    load_schema: str | None  # extractors only: as written (None: the namespace)
    file: str
    pip_url: str | None = None  # as written (known-bad loaders are recognised by it)
    executable: str | None = None  # as written (None: the plugin's name)


@dataclass(frozen=True)
class MeltanoSchedule:
    name: str
    interval: str | None
    extractor: str | None = None
    loader: str | None = None
    job: str | None = None
    file: str = ""


@dataclass
class MeltanoProject:
    path: str  # the meltano.yml
    extractors: dict[str, Plugin] = field(default_factory=dict)
    loaders: dict[str, Plugin] = field(default_factory=dict)
    schedules: list[MeltanoSchedule] = field(default_factory=list)
    jobs: dict[str, list[list[str]]] = field(default_factory=dict)  # job -> blocks -> plugin names
    environments: tuple[str, ...] = ()
    files: tuple[str, ...] = ()  # meltano.yml and every included file
    include_dirs: tuple[str, ...] = ()  # the folders the include globs read (a new file changes them)
    state_id_suffix: str | None = None  # of the active environment, as written (may hold ${VAR})


@dataclass(frozen=True)
class Tables:
    schema: str
    tables: tuple[str, ...]  # relations, schema.table
    streams: tuple[str, ...] = ()  # the stream each table comes from, in the same order ("" when unknown)
    problem: str | None = None  # why the tables could not be named


def _meltano_yml(path: Path) -> Path:
    """The project's meltano.yml: `path` is the project directory (existing or not) or the file."""
    return path if path.suffix in (".yml", ".yaml") and not path.is_dir() else path / "meltano.yml"


def _read(path: Path) -> MeltanoFile:
    try:
        data = load_yaml(path)
    except ConfigError as exc:
        raise MeltanoProjectError(str(exc)) from exc
    try:
        return MeltanoFile.model_validate(data)
    except ValidationError as exc:
        raise MeltanoProjectError(
            "\n".join(f"{path}: {line}" for line in validation_errors(exc, MeltanoFile))
        ) from None


def _merge_plugin(parent: dict, child: dict) -> dict:
    """Meltano inheritance: the child's keys win; config dicts merge; select/metadata replace."""
    merged = {**parent, **child}
    merged["config"] = {**(parent.get("config") or {}), **(child.get("config") or {})}
    return merged


def _included(main: Path, doc: MeltanoFile) -> tuple[list[Path], list[str]]:
    root, files, dirs = main.parent, [main], []
    for pattern in doc.include_paths or []:
        dirs.append(os.path.dirname(str(root / pattern)))
        files += [Path(p) for p in sorted(glob.glob(str(root / pattern)))]
    return files, dirs


def _environment_overrides(
    environments: list[_Environment], environment: str | None
) -> tuple[str | None, dict[tuple[str, str], dict]]:
    """The active environment's state_id_suffix and plugin overrides, by (kind, plugin name)."""
    suffix, overrides = None, {}
    for env in environments:
        if environment and env.name == environment:
            suffix = env.state_id_suffix
            plugins = env.config.plugins if env.config else None
            for kind in ("extractors", "loaders"):
                for p in getattr(plugins, kind, None) or []:
                    overrides[(kind, str(p.get("name")))] = p
    return suffix, overrides


def load_meltano_project(path: str | Path, environment: str | None = None) -> MeltanoProject:
    main = _meltano_yml(Path(path))
    top = _read(main)
    files, include_dirs = _included(main, top)
    raw: dict[str, dict[str, tuple[dict, Path]]] = {"extractors": {}, "loaders": {}}
    project = MeltanoProject(path=str(main), files=tuple(str(f) for f in files), include_dirs=tuple(include_dirs))
    environments: list[_Environment] = []
    for f in files:
        doc = top if f == main else _read(f)
        for kind in raw:
            for p in getattr(doc.plugins, kind, None) or []:
                if p.name in raw[kind]:
                    raise MeltanoProjectError(
                        f"{f}: {kind[:-1]} {p.name!r} is defined twice (also in {raw[kind][p.name][1]})"
                    )
                raw[kind][p.name] = (p.model_dump(exclude_none=True), f)
        project.schedules += [
            MeltanoSchedule(s.name, s.interval, s.extractor, s.loader, s.job, str(f)) for s in doc.schedules or []
        ]
        for j in doc.jobs or []:
            project.jobs[j.name] = [t.split() if isinstance(t, str) else list(t) for t in j.tasks]
        environments += doc.environments or []
    project.environments = tuple(e.name for e in environments)

    project.state_id_suffix, overrides = _environment_overrides(environments, environment)

    def resolve(kind: str, name: str, seen: tuple[str, ...] = ()) -> dict:
        plugin, _ = raw[kind][name]
        parent = plugin.get("inherit_from")
        if parent and parent in raw[kind] and parent not in seen:
            base = resolve(kind, parent, (*seen, name))
            base.pop("name", None)
            plugin = _merge_plugin(base, plugin)
        return dict(plugin)

    for kind in raw:
        for name, (_, f) in raw[kind].items():
            p = resolve(kind, name)
            if override := overrides.get((kind, name)):
                p = _merge_plugin(p, {k: v for k, v in override.items() if k != "name"})
            select = p.get("select") or ()
            if isinstance(select, str) or not all(isinstance(s, str) for s in select):
                raise MeltanoProjectError(f"{f}: {kind[:-1]} {name!r}: `select` must be a list of rules")
            getattr(project, kind)[name] = Plugin(
                name=name,
                kind=kind,
                namespace=p.get("namespace") or name.replace("-", "_"),
                config=dict(p.get("config") or {}),
                select=tuple(select),
                load_schema=p.get("load_schema"),
                file=str(f),
                pip_url=p.get("pip_url"),
                executable=p.get("executable"),
            )
    return project


def stream_tables(select: tuple[str, ...], table_of=default_stream_table) -> tuple[tuple[str, ...], str | None]:
    """Table names from `select` rules (`stream.property`), or why they cannot be named."""
    tables, _, problem = _select_streams(select, table_of)
    return tables, problem


def _select_streams(select: tuple[str, ...], table_of) -> tuple[tuple[str, ...], tuple[str, ...], str | None]:
    tables: list[str] = []
    streams: list[str] = []
    for rule in select:
        if rule.startswith("!"):
            continue  # an exclusion names no table
        stream = re.split(r"(?<!\\)\.", rule, maxsplit=1)[0].replace("\\.", ".")
        table = table_of(stream)
        if not table or _GLOB.search(table):
            return (), (), f"select rule {rule!r} is a wildcard, so the tables it loads cannot be named"
        if table not in tables:
            tables.append(table)
            streams.append(stream)
    if not tables:
        return (), (), "no `select` rules: every stream is extracted, so the tables it loads cannot be named"
    return tuple(tables), tuple(streams), None


def expand(value: str, env: Any) -> str | None:
    """Expand $VAR / ${VAR} from the profile's environment; None if one is unknown."""
    missing = False

    def sub(m: re.Match) -> str:
        nonlocal missing
        name = m.group(1) or m.group(2)
        if name not in env:
            missing = True
            return ""
        return env[name]

    out = _VAR.sub(sub, value)
    return None if missing else out


def extractor_tables(
    extractor: Plugin, loader: Plugin, *, override: tuple[str, ...] = (), env: Any = None, table_of=default_stream_table
) -> Tables:
    """The warehouse tables `meltano run <extractor> <loader>` writes, by Meltano's conventions."""
    load_schema = extractor.load_schema or extractor.namespace
    schema, problem = load_schema, None
    for key in _SCHEMA_SETTINGS:
        value = loader.config.get(key)
        if isinstance(value, str) and value:
            if _LOAD_SCHEMA_VAR.search(value):
                schema = _LOAD_SCHEMA_VAR.sub(load_schema, value)
            else:
                expanded = expand(value, env or {})
                if expanded is None:
                    problem = f"loader {loader.name!r} schema {value!r} uses a variable the profile does not set"
                schema = expanded or load_schema
            break
    if override:
        tables = []
        for t in override:  # an override may name the schema too: schema.table
            s, _, name = t.rpartition(".")
            tables.append(f"{(s or schema).lower()}.{name.lower()}")
        return Tables(schema=schema.lower(), tables=tuple(tables), streams=tuple("" for _ in tables), problem=problem)
    names, streams, select_problem = _select_streams(extractor.select, table_of)
    return Tables(
        schema=schema.lower(),
        tables=tuple(f"{schema.lower()}.{t}" for t in names),
        streams=streams,
        problem=problem or select_problem,
    )
