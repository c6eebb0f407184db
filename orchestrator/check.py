"""`orchestrator check`: everything that would stop a DAG file from importing or a DAG from building.

1. The files: orchestration.yml (loaded by the caller), meltano.yml, the dbt manifest and alerting.yml.
   One that cannot be read or validated makes the exit code 2.
2. The plan's errors (exit code 1) and warnings, and every DAG and task id it makes checked
   against Airflow's rule (a tag or a model name can make one too long).
3. Unless `render=False`, and when Airflow is importable: every Asset of the plan made as Airflow
   makes it (an Asset URI Airflow refuses names the key it comes from); each DAG file of `dags/`
   rendered in this process exactly as the file does it (`render_dags(kind)` /
   `raise_plan_errors()` of airflow/dag_files.py, the plan cache off); then what Airflow's DagBag does with every DAG it
   finds (`dag.validate()`, then `bag_dag`: cycles, cluster policies, a DAG id that two files
   define). Any exception is an error naming the DAG file it would break (exit code 1).
4. When the folder (`--dags-folder`, else `paths.dags` that init records, else this repo's dags/)
   holds other Python files, the user's own DAGs: the whole folder through a real DagBag in a
   subprocess (airflow/dagbag_probe.py, bounded in time): a DAG id of theirs that ours also has, a
   file that fails or raises SystemExit at import, is an error naming the file (exit code 1).

So `check` passing means every DAG file imports. Without Airflow it is the plan-only check.
"""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import json
import logging
import os
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alerting.routing import RoutingConfig

from . import settings
from .config import REPO_ROOT, ConfigError, OrchestrationConfig
from .config.schema import DAG_ID_RE
from .plan import ManifestError, Plan, plan_from_config
from .plan.model import KINDS

# Airflow (and the airflow/ layer, which imports it) is imported inside the functions that render:
# Airflow reads AIRFLOW_HOME at its first import, which _render sets first; Airflow may be absent or
# broken here (check reports that instead of failing); and `check --no-render` never pays for it
# (airflow.sdk alone takes 13 s on 2 loaded cores: bench/import_cost.py).

DAGS_FOLDER = REPO_ROOT / "dags"


@dataclass
class Report:
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    unreadable: bool = False  # a file could not be read or validated: exit code 2
    notes: list[str] = field(default_factory=list)
    n_dags: int | None = None  # None: no plan (a file could not be read)
    n_dbt_dags: int = 0
    dag_files: dict[str, str | None] = field(default_factory=dict)  # DAG file -> None (imports) or its error

    def error(self, message: str, *, unreadable: bool = False) -> None:
        self.errors += [line for line in message.splitlines() if line.strip()]
        self.unreadable = self.unreadable or unreadable

    @property
    def exit_code(self) -> int:
        return 2 if self.unreadable else 1 if self.errors else 0


def run_check(config: OrchestrationConfig, *, render: bool = True, dags_folder: Path | None = None) -> Report:
    """`dags_folder` (default: `paths.dags`, the folder init wrote, else this repo's dags/) is what
    Airflow will import."""
    report = Report()
    named = dags_folder or config.dags_folder  # an installed package has no dags/ of its own: only these must exist
    if named is not None and not named.is_dir():
        source = "--dags-folder" if dags_folder else f"paths.dags in {config.path.name}"
        report.error(f"{named}: {source}: not a folder (what Airflow would import is unknown)", unreadable=True)
    dags_folder = named or DAGS_FOLDER
    plan: Plan | None = None
    try:
        plan = plan_from_config(config, cache_dir=None)  # the files afresh
    except (ConfigError, ManifestError) as exc:  # MeltanoProjectError is a ConfigError
        report.error(str(exc), unreadable=True)
    else:
        report.warnings += [str(w) for w in plan.warnings]
        report.errors += [str(e) for e in plan.errors]
        report.n_dags, report.n_dbt_dags = len(plan.dags), len(plan.of_kind("dbt"))
        _check_ids(plan, config, report)
    _check_routing(config, report)
    if render:
        _render(config, plan, report, dags_folder)
    return report


def _short(text: str, n: int = 40) -> str:
    return text if len(text) <= n else f"{text[:n]}... ({len(text)} characters)"


def _check_ids(plan: Plan, config: OrchestrationConfig, report: Report) -> None:
    """Every DAG and task id the plan makes, by Airflow's rule (the plan builds them from tags,
    model names, extractor and schedule names, which nothing else limits)."""
    rule = "Airflow allows 1 to 250 of letters, digits, _ . -"
    for spec in plan.dags:
        if not DAG_ID_RE.fullmatch(spec.dag_id):
            source = "dbt.dag_id_prefix and a tag" if spec.kind == "dbt" else f"the {spec.kind} DAG's name"
            report.error(f"{config.path}: DAG id {_short(spec.dag_id)!r}, made from {source}: {rule}")
        for task in spec.tasks:
            if not DAG_ID_RE.fullmatch(task.task_id):
                file = config.manifest if spec.kind == "dbt" else config.path
                report.error(f"{file}: DAG {_short(spec.dag_id)}: task id {_short(task.task_id)!r}: {rule}")


def _check_routing(config: OrchestrationConfig, report: Report) -> None:
    if not config.alerting_config.is_file():
        report.error(
            f"{config.alerting_config}: file not found (named by alerting.config in {config.path.name})",
            unreadable=True,
        )
        return
    try:
        routing = RoutingConfig.load(config.alerting_config)
    except ValueError as exc:  # RoutingConfigError: one line per problem, each naming the file and key
        report.error(str(exc), unreadable=True)
    else:
        report.warnings += routing.warnings  # valid but probably not meant, each naming the file and key


# ------------------------------------------------------------------ the DAG files, as Airflow imports them

DagFileCall = Callable[[OrchestrationConfig], list[Any]]


def dag_files(folder: Path = DAGS_FOLDER) -> dict[str, DagFileCall]:
    """Each DAG file of `folder` that renders from the plan, and what it calls: `render_dags(kind)`
    (its DAGs) or `raise_plan_errors(...)` (no DAG; an import error when the plan leaves DAGs out)."""
    from .airflow.dag_files import raise_plan_errors, render_dags

    out: dict[str, DagFileCall] = {}
    for path in sorted(folder.glob("*.py")) if folder.is_dir() else []:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
                continue
            if node.func.id in ("render_dags", "raise_plan_errors"):
                # init's files pass config_path=CONFIG (a name, not a literal): check renders with
                # its own config instead, which is that file's (paths.dags)
                args = [_literal(a) for a in node.args]
                kwargs = {k.arg: _literal(k.value) for k in node.keywords if k.arg and k.arg != "config_path"}
                call = render_dags if node.func.id == "render_dags" else raise_plan_errors
                out[str(path)] = _as_the_file_does(call, args, kwargs)
    if not out:  # an installed package has no dags/: check what its DAG files (and init's) call
        for kind in KINDS:
            out[f"render_dags({kind!r})"] = _as_the_file_does(render_dags, [kind], {})
        out["raise_plan_errors()"] = _as_the_file_does(raise_plan_errors, [], {})
    return out


def _literal(node: ast.expr) -> Any:
    try:
        return ast.literal_eval(node)
    except ValueError:  # a name or an expression: the config path, which check's config replaces
        return None


def _as_the_file_does(call: Callable[..., Any], args: list, kwargs: dict) -> DagFileCall:
    def run(config: OrchestrationConfig) -> list[Any]:
        dags = call(*args, **kwargs, config=config)  # render_dags: {dag_id: DAG}; raise_plan_errors: None
        return list(dags.values()) if dags else []

    return run


@contextlib.contextmanager
def _plan_cache_off() -> Iterator[None]:
    """The plan cache off while the DAG files render; the variables they set put back afterwards (a
    DAG file init wrote pins ORCHESTRATION_CONFIG in its process: `check` called in-process, as
    by a test or a tool, must leave the caller's environment as it found it)."""
    names = (settings.CACHE_DIR.name, settings.ORCHESTRATION_CONFIG.name)
    before = {name: os.environ.get(name) for name in names}
    os.environ[settings.CACHE_DIR.name] = ""  # set and empty: no cache
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _check_assets(plan: Plan, config: OrchestrationConfig, report: Report) -> None:
    """Every Asset of the plan, made as the DAG files make it: Airflow refuses some URIs (the
    reserved scheme airflow://, a postgres:// one without host or database...)."""
    from airflow.sdk import Asset

    refused: dict[str, list[str]] = {}
    for name, spec in sorted(plan.assets.items()):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # e.g. a password in a URI: Airflow drops it, with a warning
                Asset(name=name, uri=spec.uri, group=spec.group, extra=dict(spec.extra))
        except Exception as exc:  # noqa: BLE001 - Airflow's validation raises ValueError, TypeError...
            refused.setdefault(f"{type(exc).__name__}: {_one_line(exc)}", []).append(spec.uri)
    base = config.profile.warehouse_uri.rstrip("/")
    for problem, uris in refused.items():
        if base and all(u.startswith(base) for u in uris):
            key = f"profiles.{config.profile.name}.warehouse_uri"
        else:
            key = "translator" if config.translator else "Assets"
        report.error(f"{config.path}: {key}: Airflow refuses {len(uris)} Asset URI(s), e.g. {uris[0]!r}: {problem}")


@contextlib.contextmanager
def _quiet_logger(name: str) -> Iterator[None]:
    logger = logging.getLogger(name)
    before = logger.disabled
    logger.disabled = True
    try:
        yield
    finally:
        logger.disabled = before


def _quiet(bag: Any) -> Any:
    """bag_dag logs a refused DAG with its traceback: the report says it in one line."""
    silent = logging.getLogger("orchestrator.check.dagbag")
    silent.propagate = False
    silent.setLevel(logging.CRITICAL + 1)
    bag._log = silent  # LoggingMixin's logger, made on first use
    return bag


def _render(config: OrchestrationConfig, plan: Plan | None, report: Report, folder: Path) -> None:
    if importlib.util.find_spec("airflow") is None:
        report.notes.append("Airflow is not installed here: the DAG files were not rendered (a plan-only check)")
        return
    # Airflow reads its home at its first import: this project's local Airflow unless one is set.
    os.environ.setdefault("AIRFLOW_HOME", str(config.airflow_home()))
    try:
        from airflow.dag_processing.dagbag import DagBag

        calls = dag_files(folder)
    except Exception as exc:  # noqa: BLE001 - whatever stops Airflow importing stops every DAG file
        report.error(f"{folder}: Airflow cannot be imported, so no DAG file can: {type(exc).__name__}: {exc}")
        return
    if plan is not None:
        _check_assets(plan, config, report)
    bag = _quiet(DagBag(dag_folder=str(folder), collect_dags=False))
    reported = set(report.errors)
    # init's DAG file renders every kind and logs a kind it leaves out: the errors file's import
    # error, listed below, says it in the report instead
    with _plan_cache_off(), _quiet_logger("orchestrator.airflow.dag_files"):
        for file, call in calls.items():
            name = _shown(file)
            try:
                dags = call(config)
            except (Exception, SystemExit) as exc:  # noqa: BLE001 - an import error of this DAG file, whatever it is
                report.dag_files[name] = _describe(exc, reported)
                report.error(f"{name}: does not import: {report.dag_files[name]}")
                continue
            report.dag_files[name] = None
            for dag in dags:
                dag.fileloc = file  # what Airflow's importer sets: a DAG id two files define is refused
                try:
                    dag.validate()
                    bag.bag_dag(dag)
                except Exception as exc:  # noqa: BLE001 - what the DagBag records as this file's import error
                    report.dag_files[name] = f"DAG {dag.dag_id!r}: {type(exc).__name__}: {exc}"
                    report.error(f"{name}: DAG {dag.dag_id!r} is refused: {type(exc).__name__}: {_one_line(exc)}")
    if others := _other_dag_files(folder, calls):
        _probe(config, folder, others, report)


def _shown(file: str) -> str:
    path = Path(file)
    with contextlib.suppress(ValueError):
        return str(path.relative_to(REPO_ROOT))
    return str(path)


def _one_line(exc: BaseException) -> str:
    return "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())


def _describe(exc: BaseException, reported: set[str]) -> str:
    """A DAG file's import error, short when it only repeats errors already listed."""
    from .airflow.dag_files import PlanError

    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if isinstance(exc, PlanError) and lines:
        head = lines[0].split("; run `orchestrator")[0]
        rest = [line for line in lines[1:] if not any(r in line for r in reported)]
        return head + (": " + "; ".join(rest) if rest else ", by the error(s) above")
    if lines and all(any(line in r for r in reported) for line in lines):
        return f"{type(exc).__name__}: the error(s) above"
    return f"{type(exc).__name__}: {_one_line(exc)}"


# ------------------------------------------------------------------ the user's own DAG files: a real DagBag

PROBE_TIMEOUT_S = 300  # the whole folder; Airflow bounds each file by [core] dagbag_import_timeout (30 s)


def _other_dag_files(folder: Path, ours: dict[str, DagFileCall]) -> list[Path]:
    """Python files of `folder` that do not render the plan: the user's own DAGs (or anything)."""
    if not folder.is_dir():
        return []
    return [
        p
        for p in sorted(folder.rglob("*.py"))
        if str(p) not in ours and "__pycache__" not in p.parts and not p.name.startswith(".")
    ]


def _probe(config: OrchestrationConfig, folder: Path, others: list[Path], report: Report) -> None:
    """Every file of the folder through a real DagBag in a subprocess (dagbag_probe.py), with this
    config: a duplicate DAG id between a user's file and ours, a file that fails or exits at import."""
    env = {
        **os.environ,
        settings.ORCHESTRATION_CONFIG.name: str(config.path),
        settings.PIPELINE_PROFILE.name: config.profile.name,
        settings.CACHE_DIR.name: "",
    }
    with tempfile.TemporaryDirectory(prefix="orchestrator-check-") as tmp:
        result_file = Path(tmp) / "dagbag.json"
        argv = [sys.executable, "-m", "orchestrator.airflow.dagbag_probe", str(folder), str(result_file)]
        try:
            proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            report.error(f"{folder}: Airflow's DagBag did not finish importing it in {PROBE_TIMEOUT_S} s")
            return
        if proc.returncode != 0 or not result_file.is_file():
            tail = [line for line in (proc.stderr or "").splitlines() if line.strip()][-1:] or ["no output"]
            report.error(f"{folder}: importing it in Airflow's DagBag failed (exit {proc.returncode}): {tail[0]}")
            return
        result = json.loads(result_file.read_text(encoding="utf-8"))
    shown_dags = {d: _shown(f) for d, f in result["dags"].items()}
    for file, message in sorted(result["errors"].items()):
        path = Path(file) if os.path.isabs(file) else folder / file
        name = _shown(str(path))
        if report.dag_files.get(name):
            continue  # rendered above, and its error listed
        lines = [line.strip() for line in message.splitlines() if line.strip()]
        report.dag_files[name] = lines[-1] if lines else "an import error"
        report.error(f"{name}: does not import in Airflow's DagBag: {report.dag_files[name]}")
    for path in others:
        report.dag_files.setdefault(_shown(str(path)), None)
    report.notes.append(
        f"{len(others)} other DAG file(s) in {folder} imported through Airflow's DagBag "
        f"({len(shown_dags)} DAG(s) in the folder)"
    )
