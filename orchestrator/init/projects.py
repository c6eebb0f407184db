"""What `orchestrator init` reads from the user's projects, without running dbt or Meltano.

dbt: dbt_project.yml (its profile, target-path), profiles.yml found by dbt's rules, the target's
adapter and the settings a warehouse URI is made of, and every `env_var()` without a default.
Meltano: meltano.yml and its include_paths (environments, loaders, extractors, schedules, jobs)
and every `${VAR}` the chosen plugins read that Meltano does not define itself.

Every problem is a ConfigError naming the file. Values from the environment are used only for
the warehouse URI's host, port, database and file name; nothing from the environment is written.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import ConfigError, load_yaml
from ..plan.meltano_project import MeltanoProject, extractor_tables, load_meltano_project
from ..runners.dbt_profile import DbtProfileError, ProfileRenderer, read_target

# `env_var('X')` with no default, as written in dbt_project.yml (rendering it would need dbt's context).
_ENV_VAR_NO_DEFAULT = re.compile(r"""env_var\(\s*['"]([A-Za-z_][A-Za-z0-9_]*)['"]\s*\)""")
# Meltano's own expansion syntax (meltano.core.utils.ENV_VAR_PATTERN): ${VAR} or $VAR, `\$` escapes.
_MELTANO_VAR = re.compile(r"(?P<escape>\\)?\$(?:\{(?P<curly>\w+)\}|(?P<normal>[A-Z][A-Z0-9_]*))")


@dataclass
class EnvVars:
    """Variables read without a default -> where each is read (for the config's comments)."""

    where: dict[str, list[str]] = field(default_factory=dict)

    def add(self, name: str, place: str) -> None:
        places = self.where.setdefault(name, [])
        if place not in places:
            places.append(place)

    def update(self, other: EnvVars) -> None:
        for name, places in other.where.items():
            for place in places:
                self.add(name, place)


# ---------------------------------------------------------------------------------------------- dbt


@dataclass(frozen=True)
class DbtSide:
    project_dir: Path
    project_name: str
    profiles_dir: Path
    profiles_file: Path
    profile: str
    target: str
    adapter: str
    manifest: Path  # <project>/<target-path>/manifest.json: what `dbt parse` writes
    warehouse_uri: str
    uri_note: str  # where the URI comes from, and any stand-in used
    env_vars: EnvVars


def _relative(path: Path, base: Path) -> str:
    try:
        return str(path.relative_to(base))
    except ValueError:
        return str(path)


def inspect_dbt(
    project_dir: Path, profiles_dir: Path | None, target: str | None, environ: Mapping[str, str]
) -> DbtSide:
    if not project_dir.is_dir():
        raise ConfigError(f"{project_dir}: no such directory (--dbt-project names the dbt project's folder)")
    project_file = project_dir / "dbt_project.yml"
    if not project_file.exists():
        raise ConfigError(
            f"{project_file}: file not found: --dbt-project must be a dbt project (it has no dbt_project.yml)"
        )
    project = load_yaml(project_file)
    text = project_file.read_text(encoding="utf-8")
    env_vars = EnvVars()
    for name in _ENV_VAR_NO_DEFAULT.findall(text):
        env_vars.add(name, "dbt_project.yml")

    render = ProfileRenderer(environ, "profiles.yml", strict=False)
    try:
        found = read_target(project_dir, profiles_dir, target, environ, render)
    except DbtProfileError as exc:
        if target is None and "has no target" in str(exc):
            raise ConfigError(f"{exc}; pass --target") from None
        raise ConfigError(str(exc)) from None
    profiles_file, profile_name, chosen, adapter = found.profiles_file, found.profile, found.name, found.type
    settings, folder = found.settings, found.profiles_dir
    label = _relative(profiles_file, project_dir.parent)
    for name, places in render.without_default.items():
        for place in places:
            env_vars.add(name, f"{label}: {place}")
    uri, note = warehouse_uri(adapter, settings, profile_name)
    note = f"{note} in {label} ({profile_name}.outputs.{chosen}, type {adapter})"
    if render.stand_ins:
        note += f"; {', '.join(render.stand_ins)} not set here, so its lower-cased name stands in: edit it"
    target_path = str(project.get("target-path") or "target")
    return DbtSide(
        project_dir=project_dir,
        project_name=str(project.get("name") or project_dir.name),
        profiles_dir=folder,
        profiles_file=profiles_file,
        profile=profile_name,
        target=chosen,
        adapter=adapter,
        manifest=(project_dir / target_path / "manifest.json"),
        warehouse_uri=uri,
        uri_note=note,
        env_vars=env_vars,
    )


def _clean(value: Any) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-]+", "_", str(value).strip()).strip("_")


def warehouse_uri(adapter: str, settings: Mapping[str, Any], profile: str) -> tuple[str, str]:
    """The Asset URI base proposed for a dbt target, and where it comes from. DuckDB:
    duckdb://<file stem>; PostgreSQL: postgres://host:port/dbname; BigQuery: bigquery://<project>;
    others: <type>://<account or host>/<database>."""
    kind = adapter.lower()

    def first(*keys: str) -> str:
        return next((_clean(settings[k]) for k in keys if settings.get(k) not in (None, "")), "")

    if kind == "duckdb":
        path = str(settings.get("path") or "")
        if path.startswith("md:"):  # MotherDuck: md:<database>
            stem = _clean(path[3:].split("?")[0]) or profile
        elif not path or path == ":memory:":
            stem = _clean(profile)
        else:
            stem = _clean(Path(path.split("?")[0]).stem) or _clean(profile)
        return f"duckdb://{stem}", "from the DuckDB file's name (path)"
    if kind in ("postgres", "postgresql"):
        host = first("host") or "localhost"
        port = first("port") or "5432"
        db = first("dbname", "database") or _clean(profile)
        return f"postgres://{host}:{port}/{db}", "from host, port and dbname"
    if kind == "bigquery":
        return f"bigquery://{first('project', 'database') or _clean(profile)}", "from the project"
    where = first("account", "host", "server") or _clean(profile)
    db = first("database", "dbname", "catalog") or _clean(profile)
    return f"{_clean(kind).lower()}://{where}/{db}", "from account (or host) and database"


# ------------------------------------------------------------------------------------------ Meltano


@dataclass(frozen=True)
class MeltanoSide:
    project_dir: Path
    meltano_yml: Path
    project: MeltanoProject
    environment: str
    environment_note: str
    loader: str
    loader_note: str
    extractors: tuple[str, ...]
    extractors_note: str
    env_vars: EnvVars


def _raw_plugins(project: MeltanoProject) -> tuple[dict[str, dict[str, dict]], list[dict]]:
    """Every plugin as written ({kind: {name: dict}}) and every file's top-level mapping."""
    plugins: dict[str, dict[str, dict]] = {"extractors": {}, "loaders": {}}
    docs = []
    for f in project.files:
        doc = load_yaml(Path(f))
        doc["__file__"] = f
        docs.append(doc)
        for kind in plugins:
            for p in (doc.get("plugins") or {}).get(kind) or []:
                if isinstance(p, dict) and p.get("name"):
                    plugins[kind][str(p["name"])] = {**p, "__file__": f}
    return plugins, docs


def _ancestors(plugins: dict[str, dict], name: str) -> list[str]:
    out, seen = [name], {name}
    while (parent := plugins.get(out[-1], {}).get("inherit_from")) and parent in plugins and parent not in seen:
        out.append(parent)
        seen.add(parent)
    return out


def _used_in_runs(project: MeltanoProject) -> tuple[Counter, set[str]]:
    """How many schedules and jobs use each loader, and every plugin a schedule or job names."""
    loaders: Counter = Counter()
    named: set[str] = set()
    for s in project.schedules:
        named.update(p for p in (s.extractor, s.loader) if p)
        if s.loader in project.loaders:
            loaders[s.loader] += 1
    for blocks in project.jobs.values():
        plugins = {p for block in blocks for p in block}
        named.update(plugins)
        for p in plugins & set(project.loaders):
            loaders[p] += 1
    return loaders, named


def _pick_loader(project: MeltanoProject, given: str | None) -> tuple[str, str]:
    yml = project.path
    names = list(project.loaders)
    if given:
        if given not in project.loaders:
            raise ConfigError(f"{yml}: no loader {given!r} (--loader); loaders: {', '.join(names) or 'none'}")
        return given, "--loader"
    if not names:
        raise ConfigError(
            f"{yml}: defines no loaders (plugins.loaders): the orchestrator runs `meltano run <extractor> "
            "<loader>`; add the loader that writes your warehouse"
        )
    if len(names) == 1:
        return names[0], "the only loader of meltano.yml"
    used, _ = _used_in_runs(project)
    ranked = used.most_common()
    if ranked and (len(ranked) == 1 or ranked[0][1] > ranked[1][1]):
        return ranked[0][0], f"the loader most schedules and jobs use ({ranked[0][1]})"
    why = (
        f"{ranked[0][0]} and {ranked[1][0]} are used by as many schedules and jobs"
        if ranked
        else "no schedule or job says which one runs"
    )
    raise ConfigError(f"{yml}: {len(names)} loaders ({', '.join(names)}) and {why}: pass --loader NAME")


def _one_per_relation(
    project: MeltanoProject, loader: str, chosen: tuple[str, ...], named: set[str]
) -> tuple[tuple[str, ...], list[str]]:
    """One extractor per relation the loader writes: of extractors that load the same table (the
    same source's family for another environment, say tap-shop and tap-shop-mariadb), the one a
    schedule or job names, else the first in meltano.yml, is kept (the plan refuses both:
    meltano_dags.loaded_twice). Returns the kept extractors and why each other was left out."""
    first: dict[str, str] = {}
    kept, left = [], []
    for name in sorted(chosen, key=lambda e: (e not in named, chosen.index(e))):
        tables = extractor_tables(project.extractors[name], project.loaders[loader]).tables
        if clash := next((t for t in tables if t in first), None):
            left.append(f"{name} (loads {clash} like {first[clash]})")
            continue
        kept.append(name)
        for t in tables:
            first.setdefault(t, name)
    return tuple(e for e in chosen if e in kept), left


def _pick_extractors(
    project: MeltanoProject, raw: dict[str, dict], given: tuple[str, ...] | None, loader: str
) -> tuple[tuple[str, ...], str]:
    yml = project.path
    if given:
        unknown = [e for e in given if e not in project.extractors]
        if unknown:
            raise ConfigError(
                f"{yml}: no extractor {', '.join(map(repr, unknown))} (--extractors); "
                f"extractors: {', '.join(project.extractors) or 'none'}"
            )
        return given, "--extractors"
    if not project.extractors:
        raise ConfigError(f"{yml}: defines no extractors (plugins.extractors): there is nothing to orchestrate")
    _, named = _used_in_runs(project)
    bases = {p.get("inherit_from") for p in raw.values()} - named
    chosen = tuple(e for e in project.extractors if e not in bases) or tuple(project.extractors)
    left = [e for e in project.extractors if e in bases]
    note = "every extractor of meltano.yml" + (
        f" but the bases others inherit from ({', '.join(left)})" if left else ""
    )
    chosen, twice = _one_per_relation(project, loader, chosen, named)
    if twice:
        note += f"; one per loaded table, so not {', '.join(twice)} (--extractors to choose)"
    return chosen, note


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, f"{path}[{i}]")


def meltano_env_vars(project: MeltanoProject, environment: str, plugins: list[str]) -> EnvVars:
    """`${VAR}`s the given plugins (with what they inherit), the environment and meltano.yml's `env`
    blocks read, less Meltano's own (MELTANO_*) and those an `env:` block of meltano.yml defines."""
    raw, docs = _raw_plugins(project)
    root = Path(project.path).parent
    defined: set[str] = set()
    sources: list[tuple[str, str]] = []  # (place, text)

    def label(f: str) -> str:
        return _relative(Path(f), root)

    def env_block(block: Any, place: str) -> None:
        if isinstance(block, dict):
            defined.update(str(k) for k in block)
            sources.extend((f"{place}.env.{k}", v) for k, v in block.items() if isinstance(v, str))

    for doc in docs:
        f = label(doc["__file__"])
        env_block(doc.get("env"), f)
        for env in doc.get("environments") or []:
            if isinstance(env, dict) and env.get("name") == environment:
                env_block(env.get("env"), f"{f}: environment {environment}")
                if isinstance(env.get("state_id_suffix"), str):
                    sources.append((f"{f}: environment {environment}.state_id_suffix", env["state_id_suffix"]))
    kinds = {**dict.fromkeys(project.extractors, "extractors"), **dict.fromkeys(project.loaders, "loaders")}
    for name in plugins:
        kind = kinds[name]
        for ancestor in _ancestors(raw[kind], name):
            env_block(raw[kind][ancestor].get("env"), f"{label(raw[kind][ancestor]['__file__'])}: {ancestor}")
        plugin = getattr(project, kind)[name]  # config merged with what it inherits and the environment's
        sources.extend((f"{label(plugin.file)}: {path}", text) for path, text in _strings(plugin.config, name))
    out = EnvVars()
    for place, text in sources:
        for m in _MELTANO_VAR.finditer(text):
            var = m["curly"] or m["normal"]
            if m["escape"] or var.startswith("MELTANO_") or var in defined:
                continue
            out.add(var, place)
    return out


def inspect_meltano(
    project_dir: Path, environment: str | None, loader: str | None, extractors: tuple[str, ...] | None
) -> MeltanoSide:
    if not project_dir.is_dir():
        raise ConfigError(f"{project_dir}: no such directory (--meltano-project names the Meltano project's folder)")
    yml = project_dir / "meltano.yml"
    if not yml.exists():
        raise ConfigError(f"{yml}: file not found: --meltano-project must be a Meltano project (it has no meltano.yml)")
    main = load_yaml(yml)
    environments = [str(e) for e in load_meltano_project(yml).environments]
    if not environments:
        raise ConfigError(
            f"{yml}: defines no environments: the orchestrator runs `meltano --environment <name>`; "
            "add one under `environments:` (e.g. `- name: prod`)"
        )
    if environment:
        if environment not in environments:
            raise ConfigError(
                f"{yml}: no environment {environment!r} (--meltano-environment); "
                f"environments: {', '.join(environments)}"
            )
        env_note = "--meltano-environment"
    elif main.get("default_environment") in environments:
        environment, env_note = str(main["default_environment"]), "default_environment of meltano.yml"
    else:
        environment, env_note = environments[0], "the first environment of meltano.yml"
    project = load_meltano_project(yml, environment)
    raw, _ = _raw_plugins(project)
    chosen_loader, loader_note = _pick_loader(project, loader)
    chosen, extractors_note = _pick_extractors(project, raw["extractors"], extractors, chosen_loader)
    return MeltanoSide(
        project_dir=project_dir,
        meltano_yml=yml,
        project=project,
        environment=environment,
        environment_note=env_note,
        loader=chosen_loader,
        loader_note=loader_note,
        extractors=chosen,
        extractors_note=extractors_note,
        env_vars=meltano_env_vars(project, environment, [*chosen, chosen_loader]),
    )
