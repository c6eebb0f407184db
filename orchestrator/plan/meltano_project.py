"""Read a Meltano project the way Meltano does, without running Meltano (1-3 s a call).

Covers what the plan needs: plugins (with `inherit_from`), `include_paths`
files, environment overrides, `select` rules, `load_schema`, schedules and jobs.
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..profiles import ConfigError, load_yaml

# Loader settings that name the target schema (pipelinewise and SDK targets).
_SCHEMA_SETTINGS = ("default_target_schema", "schema", "target_schema")
_LOAD_SCHEMA_VAR = re.compile(r"\$\{?MELTANO_EXTRACT__LOAD_SCHEMA\}?")
_GLOB = re.compile(r"[*?\[]")


class MeltanoProjectError(ConfigError):
    """meltano.yml (or an included file) cannot be used; the message names the file."""


@dataclass(frozen=True)
class Plugin:
    name: str
    kind: str  # extractors | loaders
    namespace: str
    config: dict
    select: tuple[str, ...]
    load_schema: str | None  # extractors only: as written (None: the namespace)
    file: str


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


@dataclass(frozen=True)
class Tables:
    schema: str
    tables: tuple[str, ...]
    problem: str | None = None  # why the tables could not be named


def _meltano_yml(path: Path) -> Path:
    return path / "meltano.yml" if path.is_dir() else path


def _read(path: Path) -> dict:
    try:
        return load_yaml(path)
    except ConfigError as exc:
        raise MeltanoProjectError(str(exc)) from exc


def _merge_plugin(parent: dict, child: dict) -> dict:
    """Meltano inheritance: the child's keys win; config dicts merge; select/metadata replace."""
    merged = {**parent, **child}
    merged["config"] = {**(parent.get("config") or {}), **(child.get("config") or {})}
    return merged


def load_meltano_project(path: str | Path, environment: str | None = None) -> MeltanoProject:
    main = _meltano_yml(Path(path))
    root = main.parent
    data = _read(main)
    files = [main]
    include_dirs = []
    for pattern in data.get("include_paths") or []:
        include_dirs.append(os.path.dirname(str(root / pattern)))
        for included in sorted(glob.glob(str(root / pattern))):
            files.append(Path(included))
    raw: dict[str, dict[str, tuple[dict, Path]]] = {"extractors": {}, "loaders": {}}
    schedules: list[MeltanoSchedule] = []
    jobs: dict[str, list[list[str]]] = {}
    environments: list[dict] = []
    for f in files:
        doc = data if f == main else _read(f)
        for kind in raw:
            for p in (doc.get("plugins") or {}).get(kind) or []:
                if not isinstance(p, dict) or not p.get("name"):
                    raise MeltanoProjectError(f"{f}: every {kind[:-1]} needs a `name`")
                if p["name"] in raw[kind]:
                    raise MeltanoProjectError(
                        f"{f}: {kind[:-1]} {p['name']!r} is defined twice (also in {raw[kind][p['name']][1]})"
                    )
                raw[kind][p["name"]] = (p, f)
        for s in doc.get("schedules") or []:
            if not isinstance(s, dict) or not s.get("name"):
                raise MeltanoProjectError(f"{f}: every schedule needs a `name`")
            schedules.append(
                MeltanoSchedule(
                    name=s["name"],
                    interval=s.get("interval"),
                    extractor=s.get("extractor"),
                    loader=s.get("loader"),
                    job=s.get("job"),
                    file=str(f),
                )
            )
        for j in doc.get("jobs") or []:
            tasks = j.get("tasks") or []
            blocks = [t.split() if isinstance(t, str) else [str(x) for x in t] for t in tasks]
            jobs[j["name"]] = [[part for part in block] for block in blocks]
        environments += doc.get("environments") or []

    env_overrides: dict[tuple[str, str], dict] = {}
    for env in environments:
        if environment and env.get("name") == environment:
            for kind in raw:
                for p in ((env.get("config") or {}).get("plugins") or {}).get(kind) or []:
                    env_overrides[(kind, p.get("name"))] = p

    def resolve(kind: str, name: str, seen: tuple[str, ...] = ()) -> dict:
        plugin, f = raw[kind][name]
        parent = plugin.get("inherit_from")
        if parent and parent in raw[kind] and parent not in seen:
            base = resolve(kind, parent, (*seen, name))
            base.pop("name", None)
            plugin = _merge_plugin(base, plugin)
        return dict(plugin)

    project = MeltanoProject(
        path=str(main),
        schedules=schedules,
        jobs=jobs,
        environments=tuple(e.get("name") for e in environments if e.get("name")),
        files=tuple(str(f) for f in files),
        include_dirs=tuple(include_dirs),
    )
    for kind in raw:
        for name, (_, f) in raw[kind].items():
            p = resolve(kind, name)
            override = env_overrides.get((kind, name))
            if override:
                p = _merge_plugin(p, {k: v for k, v in override.items() if k != "name"})
            select = p.get("select") or ()
            if isinstance(select, str) or not all(isinstance(s, str) for s in select):
                raise MeltanoProjectError(f"{f}: {kind[:-1]} {name!r}: `select` must be a list of rules")
            plugin = Plugin(
                name=name,
                kind=kind,
                namespace=p.get("namespace") or name.replace("-", "_"),
                config=dict(p.get("config") or {}),
                select=tuple(select),
                load_schema=p.get("load_schema"),
                file=str(f),
            )
            getattr(project, kind)[name] = plugin
    return project


def stream_tables(select: tuple[str, ...]) -> tuple[tuple[str, ...], str | None]:
    """Table names from `select` rules (`stream.property`), or why they cannot be named.

    A stream ID `db-table` loads table `table` (Singer loaders split on '-').
    """
    tables: list[str] = []
    for rule in select:
        if rule.startswith("!"):
            continue  # an exclusion names no table
        stream = re.split(r"(?<!\\)\.", rule, maxsplit=1)[0].replace("\\.", ".")
        table = stream.split("-")[-1]
        if not table or _GLOB.search(table):
            return (), f"select rule {rule!r} is a wildcard: list the tables in the orchestration config"
        if table.lower() not in tables:
            tables.append(table.lower())
    if not tables:
        return (), "no `select` rules: every stream is extracted, so list the tables in the orchestration config"
    return tuple(tables), None


def _expand(value: str, env: dict[str, str]) -> str | None:
    """Expand $VAR / ${VAR} from the profile's environment; None if one is unknown."""
    missing = False

    def sub(m: re.Match) -> str:
        nonlocal missing
        name = m.group(1) or m.group(2)
        if name not in env:
            missing = True
            return ""
        return env[name]

    out = re.sub(r"\$\{(\w+)\}|\$([A-Z][A-Z0-9_]*)", sub, value)
    return None if missing else out


def extractor_tables(
    extractor: Plugin, loader: Plugin, *, override: tuple[str, ...] = (), env: dict[str, str] | None = None
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
                expanded = _expand(value, env or {})
                if expanded is None:
                    problem = f"loader {loader.name!r} schema {value!r} uses a variable the profile does not set"
                schema = expanded or load_schema
            break
    if override:
        tables = []
        for t in override:  # an override may name the schema too: schema.table
            s, _, name = t.rpartition(".")
            tables.append(f"{(s or schema).lower()}.{name.lower()}")
        return Tables(schema=schema.lower(), tables=tuple(tables), problem=problem)
    names, select_problem = stream_tables(extractor.select)
    return Tables(
        schema=schema.lower(), tables=tuple(f"{schema.lower()}.{t}" for t in names), problem=problem or select_problem
    )
