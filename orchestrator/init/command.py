"""`orchestrator init`: read the projects, propose a profile and tags, write the files, print the
plan and the next steps. See orchestrator/init/__init__.py for the command line."""

from __future__ import annotations

import argparse
import errno
import importlib.util
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from alerting.routing import RoutingConfig

from ..config import ConfigError, OrchestrationConfig, load_config
from ..config.schema import ENV_NAME_RE
from ..plan import plan_from_config
from ..plan.manifest import DbtProject, load_manifest
from ..plan.text import plan_table
from ..runners.dbt import DbtError, DbtProjectRef, run_dbt
from . import texts
from .outputs import Output, show, write_and_say
from .projects import DbtSide, MeltanoSide, inspect_dbt, inspect_meltano
from .tags import MAX_TAGS, TagChoice, choose_tags

SHOWN_TAGS = 20  # rows of the tag table printed (the config's comment lists more)


def _ref(target: Path, given: str, base: Path) -> str:
    """How the config names a path: relative to the config's folder when it was given relative."""
    if os.path.isabs(os.path.expanduser(given)):
        return str(target)
    return os.path.relpath(target, base)


def _names(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    return tuple(n.strip() for n in value.split(",") if n.strip())


# ------------------------------------------------------------------------------------------ the dbt manifest


def _parse(dbt: DbtSide, env: dict[str, str]) -> None:
    """`dbt deps` (when the project has packages) and `dbt parse`, in-process, into the project's target/."""
    ref = DbtProjectRef(dbt.project_dir, dbt.profiles_dir, dbt.target)
    steps = [["parse", "--quiet", "--no-use-colors"]]
    if (dbt.project_dir / "packages.yml").exists() or (dbt.project_dir / "dependencies.yml").exists():
        steps.insert(0, ["deps", "--quiet", "--no-use-colors"])
    for args in steps:
        started = time.monotonic()
        try:
            run_dbt(args, env=env, project=ref)
        except DbtError as exc:
            raise ConfigError(f"{dbt.project_dir}: dbt {args[0]} failed: {exc}") from None
        print(f"ran dbt {args[0]} in {show(dbt.project_dir)} ({time.monotonic() - started:.1f} s)")


ADAPTER_EXTRAS = ("duckdb", "postgres")  # adapters with an extra of their own in pyproject.toml


def adapter_missing(adapter: str) -> str | None:
    """Why dbt cannot load the target's adapter in this Python, and the install that fixes it; None
    when it is there. dbt itself would say only `Could not find adapter type duckdb!`."""
    try:
        found = importlib.util.find_spec(f"dbt.adapters.{adapter}") is not None
    except (ImportError, ValueError):
        found = False
    if found:
        return None
    fix = (
        f'pip install -c constraints.txt ".[{adapter}]" in the orchestrator\'s checkout'
        if adapter in ADAPTER_EXTRAS
        else f'pip install "dbt-{adapter}~=1.11.0"'
    )
    return f"dbt's {adapter} adapter is not installed in this Python ({sys.prefix}): {fix}"


def _manifest(dbt: DbtSide, parse: bool, env: dict[str, str]) -> DbtProject | None:
    if parse and (missing := adapter_missing(dbt.adapter)):
        raise ConfigError(f"{dbt.profiles_file}: {dbt.profile}.outputs.{dbt.target}: {missing}")
    if parse:
        _parse(dbt, env)
    if not dbt.manifest.exists():
        return None
    return load_manifest(dbt.manifest)  # ManifestError (a ConfigError's sibling) names the file


# ------------------------------------------------------------------------------------------ printing


def _print_tags(choice: TagChoice, manifest: Path, has_manifest: bool) -> None:
    if not has_manifest:
        print(
            f"no dbt manifest at {show(manifest)}: no tags proposed (every node would run in dbt_untagged).\n"
            "  To have tags proposed: run `dbt parse` in the dbt project, or pass --parse (dbt deps and dbt parse, "
            "into the project's target/); then init again with --force."
        )
        return
    if choice.counts:
        width = max(len(t) for t, _ in choice.counts[:SHOWN_TAGS])
        print(f"dbt tags in {show(manifest)} (nodes carrying each; tests not counted):")
        for tag, n in choice.counts[:SHOWN_TAGS]:
            verdict = choice.verdicts.get(tag)
            note = "" if verdict is None else ("  kept" if verdict.kept else f"  left out: {verdict.why[:300]}")
            print(f"  {tag:<{width}}  {n:>4}{note}")
        if len(choice.counts) > SHOWN_TAGS:
            more = len(choice.counts) - SHOWN_TAGS
            print(f"  ... and {more} more, fewer nodes each (the config's comment lists them)")
    else:
        print(f"no tags in {show(manifest)}: every node runs in dbt_untagged")
    if choice.given:
        print("tags from --tags:")
    elif choice.counts:
        print(
            "choosing tags: those that split the models into domains (many models, little overlap, lineage-connected "
            "first), most frequent first, each kept if it builds a DAG of its own and adds no error, "
            f"at most {MAX_TAGS}:"
        )
    for t in choice.tries:
        outcome = f"{t.dbt_dags} dbt DAGs, {len(t.errors)} error(s)"
        mark = "" if choice.given else ("  kept" if t.kept else f"  left out: {t.why[:300]}")
        print(f"  tags [{', '.join(t.tags)}]: {outcome}{mark}")
        if choice.given:
            for e in t.errors:
                print(f"    error: {e}")
    print(f"chosen: [{', '.join(choice.chosen)}]")


def _print_plan(config_path: Path, profile: str) -> int:
    """The written config's plan and `check`'s verdict; the number of errors."""
    try:
        config = load_config(config_path, profile)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    errors = []
    try:
        RoutingConfig.load(config.alerting_config)
    except ValueError as exc:
        errors += str(exc).splitlines()
    try:
        plan = plan_from_config(config, cache_dir=None)
    except ValueError as exc:
        for e in [*str(exc).splitlines(), *errors]:
            print(f"error: {e}", file=sys.stderr)
        return 1 + len(errors)
    errors = [str(e) for e in plan.errors] + errors
    print()
    print(plan_table(plan))
    for w in plan.warnings:
        print(f"warning: {w}")
    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    print(
        f"check: {len(plan.dags)} DAGs ({len(plan.of_kind('dbt'))} dbt), "
        f"{len(plan.warnings)} warning(s), {len(errors)} error(s)"
    )
    return len(errors)


def _next_steps(
    config_path: Path,
    dags: list[Path],
    relative: bool,
    env_vars: dict[str, list[str]],
    manifest: Path,
    has_manifest: bool,
) -> None:
    steps = []
    if env_vars:
        listed = ", ".join(f"{n}{' (set in this shell)' if n in os.environ else ''}" for n in sorted(env_vars))
        steps.append(
            f"Set {listed} in the environment of Airflow's processes (or replace {texts.PLACEHOLDER} in "
            f"{show(config_path)}; no secrets there)."
        )
    if not has_manifest:
        steps.append(
            f"Run `dbt parse` in {show(manifest.parent.parent)} (or init with --parse), then init again with --force "
            "to have tags proposed."
        )
    steps += [
        f"Check: orchestrator --config {show(config_path)} check",
        f"Airflow (with this package installed) parses {' and '.join(show(d) for d in dags)}: "
        + (
            f"point its dags_folder at {show(dags[0].parent)}, or deploy that folder together with the config "
            "(the DAG files name it relative to themselves); for another dags folder, init with --dags-folder."
            if relative
            else f"they name {show(config_path)} by its absolute path."
        )
        + f" Run `dbt parse` in your deploy so that {show(manifest)} is there and current.",
        "Pools: none needed (warehouse_pool: null). Alerts: fill in alerting.yml, then give Airflow "
        "$SLACK_BOT_TOKEN or the connection slack_api_default (SMTP: email.conn_id).",
    ]
    print("\nnext steps:")
    for i, s in enumerate(steps, 1):
        print(f"  {i}. {s}")


# ------------------------------------------------------------------------------------------ the command


@dataclass(frozen=True)
class _Inputs:
    """What init works from: the command line, where it writes, both projects as read, the
    variables they read (each with where), and the name of the profile it writes."""

    args: argparse.Namespace
    config_path: Path
    dags_folder: Path
    dbt: DbtSide
    meltano: MeltanoSide
    env_vars: dict[str, list[str]]
    profile: str

    @property
    def base(self) -> Path:
        return self.config_path.parent


def run_init(args: argparse.Namespace) -> int:
    started = time.monotonic()
    inputs = _read_inputs(args)
    dbt = inputs.dbt
    config = _config(inputs)
    manifest = _manifest(dbt, args.parse, config.profile.environment())
    given = _names(args.tags)
    if manifest is not None:
        choice = choose_tags(config, inputs.meltano.project, manifest, given)
    else:
        choice = TagChoice(chosen=given or (), given=given is not None)
    _print_tags(choice, dbt.manifest, manifest is not None)
    outputs = _outputs(inputs, choice, manifest is not None)
    if not write_and_say(outputs, args.force):
        return 1
    errors = _print_plan(inputs.config_path, inputs.profile)
    dag_files = [o.path for o in outputs[2:]]
    relative = inputs.dags_folder.is_relative_to(inputs.base)
    _next_steps(inputs.config_path, dag_files, relative, inputs.env_vars, dbt.manifest, manifest is not None)
    print(f"\ninit took {time.monotonic() - started:.1f} s")
    return 1 if errors else 0  # written, but `check` would fail: say so to scripts too


def _resolved(value: str, flag: str) -> Path:
    """A path of the command line, absolute; a symlink loop (RuntimeError, OSError) names the flag."""
    try:
        return Path(value).expanduser().resolve()
    except (RuntimeError, OSError) as exc:
        why = "a symlink loop" if isinstance(exc, RuntimeError) or exc.errno == errno.ELOOP else exc.strerror
        raise ConfigError(f"{value}: {flag}: {why}: nothing written") from None


def _read_inputs(args: argparse.Namespace) -> _Inputs:
    """Where init writes, and both projects read (and printed)."""
    config_path = _resolved(args.init_config or args.config or "orchestration.yml", "--config")
    if config_path.is_dir():
        raise ConfigError(f"{config_path}: is a directory: --config names the orchestration file to write")
    dags_folder = _resolved(args.dags_folder, "--dags-folder") if args.dags_folder else config_path.parent / "dags"
    dbt = inspect_dbt(
        _resolved(args.dbt_project, "--dbt-project"),
        _resolved(args.dbt_profiles_dir, "--dbt-profiles-dir") if args.dbt_profiles_dir else None,
        args.target,
        os.environ,
    )
    meltano = inspect_meltano(
        _resolved(args.meltano_project, "--meltano-project"),
        args.meltano_environment,
        args.loader,
        _names(args.extractors),
    )
    env_vars = {**meltano.env_vars.where}
    for name, places in dbt.env_vars.where.items():
        env_vars[name] = [*env_vars.get(name, []), *places]
    env_vars.pop(texts.OUTBOX_VAR, None)  # written with its own value
    env_vars = {k: v for k, v in env_vars.items() if ENV_NAME_RE.fullmatch(k)}  # a profile's `env` takes no other
    print(f"dbt project {dbt.project_name} ({show(dbt.project_dir)}): profile {dbt.profile}, target {dbt.target}")
    print(f"  profiles.yml: {show(dbt.profiles_file)}; warehouse_uri {dbt.warehouse_uri}, {dbt.uri_note}")
    if not args.parse and (missing := adapter_missing(dbt.adapter)):
        print(f"  warning: {missing} (Airflow's dbt tasks need it)")
    print(
        f"Meltano project {show(meltano.project_dir)}: environment {meltano.environment} ({meltano.environment_note})"
    )
    print(f"  loader {meltano.loader} ({meltano.loader_note})")
    print(f"  extractors {', '.join(meltano.extractors)} ({meltano.extractors_note})")
    profile = args.init_profile or args.profile or meltano.environment
    return _Inputs(args, config_path, dags_folder, dbt, meltano, env_vars, profile)


def _config(inputs: _Inputs) -> OrchestrationConfig:
    """The config init is about to write, as the orchestrator reads it (to choose the tags with)."""
    dbt, meltano = inputs.dbt, inputs.meltano
    dbt_section = {"project_dir": str(dbt.project_dir), "manifest": str(dbt.manifest)}
    if inputs.args.dbt_profiles_dir:
        dbt_section["profiles_dir"] = str(dbt.profiles_dir)
    profile = {
        "meltano_environment": meltano.environment,
        "loader": meltano.loader,
        "dbt_target": inputs.args.target,
        "extractors": list(meltano.extractors),
        "warehouse_uri": dbt.warehouse_uri,
        "env": {texts.OUTBOX_VAR: texts.OUTBOX_URL, **dict.fromkeys(inputs.env_vars, texts.PLACEHOLDER)},
    }
    sections = {"dbt": dbt_section, "meltano": {"project_dir": str(meltano.project_dir)}}
    return OrchestrationConfig.of(
        {**sections, "profiles": {inputs.profile: profile}}, inputs.config_path, inputs.profile
    )


def _outputs(inputs: _Inputs, choice: TagChoice, manifest_exists: bool) -> list[Output]:
    """orchestration.yml, alerting.yml (only if absent) and the two DAG files."""
    args, dbt, meltano, base = inputs.args, inputs.dbt, inputs.meltano, inputs.base
    text = texts.config_text(
        texts.ConfigText(
            profile=inputs.profile,
            dbt_project_dir=_ref(dbt.project_dir, args.dbt_project, base),
            dbt_profiles_dir=_ref(dbt.profiles_dir, args.dbt_profiles_dir, base) if args.dbt_profiles_dir else None,
            manifest=_ref(dbt.manifest, args.dbt_project, base),
            manifest_exists=manifest_exists,
            tags=choice.chosen,
            tags_given=choice.given,
            other_tags=choice.others(),
            meltano_project_dir=_ref(meltano.project_dir, args.meltano_project, base),
            meltano_environment=meltano.environment,
            loader=meltano.loader,
            extractors=meltano.extractors,
            dbt_target=args.target,
            warehouse_uri=dbt.warehouse_uri,
            uri_note=dbt.uri_note,
            adapter=dbt.adapter,
            env_vars=inputs.env_vars,
            dags_folder=_ref(inputs.dags_folder, args.dags_folder or "dags", base),
        )
    )
    dags = inputs.dags_folder
    relative = dags.is_relative_to(base)  # deployed together with the config: name it relatively
    config_ref = os.path.relpath(inputs.config_path, dags) if relative else str(inputs.config_path)
    return [
        Output(inputs.config_path, text),
        Output(base / "alerting.yml", texts.ALERTING_TEXT, create_only=True),
        Output(dags / texts.DAG_FILE, texts.dag_file_text(config_ref, relative)),
        Output(dags / texts.ERRORS_FILE, texts.errors_file_text(config_ref, relative)),
    ]
