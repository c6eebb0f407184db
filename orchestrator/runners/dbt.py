"""Run dbt in-process with dbt's programmatic runner (dbtRunner).

Results come back as plain records, one per node (model, test, seed,
snapshot): status, rows affected, duration and message, which the callers
turn into a summary, Asset events or a failure listing what failed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..config import OrchestrationConfig
from .dbt_profile import default_target, profiles_dir
from .root_error import dbt_node_root, dbt_root

PARTIAL_PARSE = "partial_parse.msgpack"  # dbt's partial-parse state, in its target path
FAILED = frozenset({"error", "fail", "runtime error"})  # dbt's statuses of a node that did not succeed


@dataclass(frozen=True)
class NodeResult:
    unique_id: str
    resource_type: str
    status: str  # success | error | pass | fail | warn | skipped ...
    duration_s: float
    rows_affected: int | None = None
    message: str | None = None
    failures: int | None = None

    @property
    def failed(self) -> bool:
        return self.status in FAILED

    @property
    def name(self) -> str:
        """The node's name (`test.pkg.not_null_x.1a2b` -> `not_null_x`)."""
        parts = self.unique_id.split(".")
        return parts[2] if len(parts) > 2 else self.unique_id


@dataclass
class DbtRunResult:
    args: list[str]
    success: bool
    duration_s: float
    nodes: list[NodeResult] = field(default_factory=list)
    exception: str | None = None
    listed: list[str] = field(default_factory=list)  # `dbt ls --output json --output-keys unique_id`: the unique_ids

    def of_type(self, resource_type: str) -> list[NodeResult]:
        return [n for n in self.nodes if n.resource_type == resource_type]

    @property
    def failed(self) -> list[NodeResult]:
        return [n for n in self.nodes if n.failed]

    def root_error(self) -> str:
        """Why it failed, in one line: dbt's exception when it could not run (a compile error at
        parse time), else the first failed node's error (`Compilation Error in model x (...): ...`,
        `Runtime Error in model x (...): Catalog Error: ...`, `test y: Got 1 result, ...`)."""
        if self.exception:
            return dbt_root(self.exception)
        for n in self.failed:
            return dbt_node_root(n.resource_type, n.name, n.message)
        return ""

    def summary(self) -> str:
        """One line: the command, what failed, what was skipped, and the root cause."""
        command = f"dbt {self.args[0]}" if self.args else "dbt"
        if self.exception:
            return f"{command} could not run: {self.root_error()}"
        failed = self.failed
        what = ", ".join(f"{n.resource_type} {n.name}" for n in failed[:3])
        out = f"{command}: {len(failed)} failed ({what}{' …' if len(failed) > 3 else ''})"
        if skipped := sum(1 for n in self.nodes if n.status == "skipped"):
            out += f", {skipped} skipped"
        return out + (f": {root}" if (root := self.root_error()) else "")


class DbtError(RuntimeError):
    """dbt failed. The message's first line is the result's summary (with the root cause), then
    the command, dbt's exception and every failed node."""

    def __init__(self, result: DbtRunResult):
        self.result = result
        lines = [result.summary(), f"  dbt {' '.join(result.args)} failed"]
        if result.exception:
            lines.append(result.exception)
        lines += [
            f"  {n.resource_type} {n.unique_id}: {n.status}: {(n.message or '').strip()[:500]}" for n in result.failed
        ]
        skipped = [n for n in result.nodes if n.status == "skipped"]
        if skipped:
            lines.append(f"  {len(skipped)} node(s) skipped because an upstream failed")
        super().__init__("\n".join(lines))


@contextmanager
def _environ(env: Mapping[str, str]) -> Iterator[None]:
    """dbt's env_var() reads os.environ: expose `env` for the duration of the call."""
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _release_duckdb() -> None:
    """dbt-duckdb keeps its database open in-process after a run; DuckDB allows one writer per
    file, so the next Meltano load (another process) would fail. Close it when dbt is done."""
    try:  # dbt-duckdb is the optional `duckdb` extra: another adapter has nothing to close
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager as manager
    except ImportError:
        return
    with manager._LOCK:
        if manager._ENV is not None:
            manager._ENV.close()
            manager._ENV = None


def _node_result(r) -> NodeResult:
    adapter = getattr(r, "adapter_response", None) or {}
    rows = adapter.get("rows_affected") if isinstance(adapter, dict) else None
    return NodeResult(
        unique_id=r.node.unique_id,
        resource_type=str(r.node.resource_type),
        status=str(r.status),
        duration_s=float(r.execution_time or 0.0),
        rows_affected=rows if isinstance(rows, int) and rows >= 0 else None,
        message=r.message,
        failures=getattr(r, "failures", None),
    )


@dataclass(frozen=True)
class DbtProjectRef:
    """Where the configured dbt project is and how dbt finds its profile (see dbt_profile)."""

    project_dir: Path
    profiles_dir: Path
    target: str | None  # passed as --target only when dbt would not pick it by itself
    # the partial-parse state the runs of this project share (see `private_target`); None: the
    # published one only
    parse_state: Path | None = None

    @classmethod
    def of(cls, config: OrchestrationConfig, env: Mapping[str, str]) -> DbtProjectRef:
        target = config.profile.dbt_target
        if target and target == default_target(config, env):
            target = None  # an explicit --target would not match the published partial-parse state
        # per project and target: a state of another project (two configs, one runs directory)
        # would cost a full parse and replace this project's
        project_key = hashlib.sha1(str(config.dbt_project_dir.resolve()).encode()).hexdigest()[:10]
        shared = config.dbt_runs_dir(env) / f"{PARTIAL_PARSE}.{target or 'default'}.{project_key}"
        return cls(config.dbt_project_dir, profiles_dir(config, env), target, shared)

    def args(self) -> list[str]:
        out = ["--project-dir", str(self.project_dir), "--profiles-dir", str(self.profiles_dir)]
        return out + (["--target", self.target] if self.target else [])


def private_target(project_dir: Path, target_path: Path, shared: Path | None = None) -> None:
    """Prepare a target directory of the caller's own, seeded with the newest partial-parse state.

    Runs never write into the project's `target/`: its manifest.json is the published one the
    DAG files read, and concurrent DAG runs would overwrite each other's artifacts. Seeding
    `partial_parse.msgpack` lets dbt skip re-parsing the project when nothing changed.

    The published state was parsed by whoever published it (`make setup`, a CI job, `init`), often
    with another environment: dbt hashes the profile's rendered connection (a warehouse path, a
    host) and the `--vars`, and a state parsed under other values is thrown away for a full parse
    (3-4 s on the demo, per invocation). So the runs also share the last state one of them parsed
    (`shared`, see `share_parse_state`), and a run starts from whichever is newer. dbt itself checks
    the state against the project's files, profile, vars and env vars and re-parses what differs,
    as it does in a project's own target/, so seeding with a newer state is never wrong, only faster.
    """
    target_path.mkdir(parents=True, exist_ok=True)
    seeds = [p for p in (project_dir / "target" / PARTIAL_PARSE, shared) if p is not None and p.exists()]
    if not seeds:
        return
    seed = max(seeds, key=lambda p: p.stat().st_mtime)
    mine = target_path / PARTIAL_PARSE
    if not mine.exists() or mine.stat().st_mtime < seed.stat().st_mtime:
        shutil.copy2(seed, mine)


def share_parse_state(target_path: Path, shared: Path) -> None:
    """Offer the state this run's dbt parsed (when newer than the shared one) to the next runs.
    Atomic (a copy renamed into place): runs of several DAGs may finish at once."""
    mine = target_path / PARTIAL_PARSE
    if not mine.exists() or (shared.exists() and shared.stat().st_mtime >= mine.stat().st_mtime):
        return
    shared.parent.mkdir(parents=True, exist_ok=True)
    tmp = shared.with_name(f".{shared.name}.{os.getpid()}.tmp")
    shutil.copy2(mine, tmp)
    os.replace(tmp, shared)


def run_dbt(
    args: Sequence[str],
    *,
    env: Mapping[str, str],
    project: DbtProjectRef,
    target_path: str | Path | None = None,
    raise_on_failure: bool = True,
    manifest_json: bool = True,
) -> DbtRunResult:
    """`dbt <args>` against `project` (DbtProjectRef.of(config, env): the configured one), with its
    profile; returns per-node results. With `target_path`, artifacts and logs go there (see
    `private_target`). `manifest_json=False`: dbt writes no manifest.json (twice per invocation: once
    parsed, once after the run) nor graph.gpickle, which no reader of a private target needs; the
    run_results.json that `dbt retry` and the failure alerts read is written all the same."""
    # Only when dbt runs: importing it takes seconds (7.7 s on 2 loaded cores, bench/import_cost.py),
    # and this module is imported by every DAG file that renders a task calling it.
    from dbt.cli.main import dbtRunner

    full = [*args, *project.args()]
    if target_path is not None:
        private_target(project.project_dir, Path(target_path), project.parse_state)
        full += ["--target-path", str(target_path), "--log-path", str(target_path)]
    if not manifest_json:
        full.append("--no-write-json")
    started = time.monotonic()
    with _environ(env):
        try:
            res = dbtRunner().invoke(full)
        finally:
            _release_duckdb()
    write = getattr(res.result, "write", None)  # a run's results (RunExecutionResult); not `ls`'s list
    if not manifest_json and target_path is not None and write is not None:
        write(str(Path(target_path) / "run_results.json"))  # what dbt's write_json would have written
    # a run-form --vars parses under vars the DAGs' own runs do not have: its state is not theirs
    if target_path is not None and project.parse_state is not None and "--vars" not in args:
        share_parse_state(Path(target_path), project.parse_state)
    results = getattr(res.result, "results", None) or []
    listed = []
    if isinstance(res.result, list):  # `dbt ls`: one line per node
        for line in res.result:
            try:
                listed.append(json.loads(line)["unique_id"])
            except (ValueError, KeyError, TypeError):
                listed.append(str(line))
    out = DbtRunResult(
        args=list(args),
        success=bool(res.success),
        duration_s=time.monotonic() - started,
        nodes=[_node_result(r) for r in results if hasattr(r, "node")],
        exception=str(res.exception) if res.exception else None,
        listed=listed,
    )
    if raise_on_failure and not out.success:
        raise DbtError(out)
    return out
