"""Read or overwrite a Meltano state safely: the logic behind the "Meltano State" DAG.

One entry point, `run_state_action`, for five actions on a state ID
(`<environment>:<extractor>-to-<loader>[:<state_id_suffix>]`, e.g. `dev:tap-shop-to-target-duckdb`;
the Translator forms and parses them):

    list   the known state IDs               meltano state list (all environments': it does not filter)
    get    the state JSON                    meltano state get
    set    replace it with a given JSON      meltano state set --force
    merge  deep-merge a JSON into it         meltano state merge
    clear  delete it                         meltano state clear --force

Safety rules:
- Every call goes through `run_meltano` as an argv list (no shell), with the
  profile's environment (`meltano state` ignores `default_environment`), and `--`
  before the positional state ID so an ID like `--all` can never become an option.
- The state ID must be a known one (`meltano state list`, or `known_ids` from the
  caller). Exception, so a first backfill is possible: `set` may create the ID a
  configured extractor of the profile would use, `<env>:<extractor>-to-<loader>`,
  before it ever ran. Any other unknown ID is refused, so a typo cannot create
  a state that no run reads. Writes to another environment's ID are refused.
- The JSON for set/merge must be an object with a `singer_state` object.
- `dry_run` (the default) reads, computes the after-state and the diff, writes nothing.
- set/merge/clear first write a backup of the previous state
  (`<backup_dir>/<safe state id>-<hash>/<UTC timestamp>.json`, atomically); if that
  fails, the state is not touched. Restore: `set` with the backup's `state`
  (or `clear`, when the backup records that there was no state).
- `is_source_busy(state_id)` (supplied by the DAG) can veto set/merge/clear while
  the source is running or queued.

No Airflow import: the DAG wraps this module.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import Profile

if TYPE_CHECKING:  # the State DAG's form imports this module at each parse: only a run needs them
    from ..plan.translator import StateId, Translator

ACTIONS = ("list", "get", "set", "merge", "clear")
WRITE_ACTIONS = ("set", "merge", "clear")
MAX_DEPTH = 100  # a state nested deeper than this is refused (Singer states are a few levels deep)
# Meltano's console log lines: "2026-01-01T00:00:00.000000Z [info     ] meltano ...".
_LOG_LINE = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\S*\s+\[")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class StateError(ValueError):
    """A request was refused; the message says why. Nothing was written."""


@dataclass
class StateResult:
    action: str
    state_id: str | None
    dry_run: bool
    before: dict | None = None
    after: dict | None = None
    diff: str = ""
    backup_path: str | None = None
    message: str = ""
    state_ids: list[str] | None = None  # for `list`

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # plain str/bool/dict/list: JSON-serialisable, XCom-friendly


def parse_state_id(state_id: str, names: Translator) -> StateId:
    """`dev:tap-shop-to-target-duckdb[:suffix]` -> its parts (the translator's rule), else StateError."""
    parsed = names.parse_state_id(state_id)
    if parsed is None:
        raise StateError(
            f"state ID {state_id!r} does not follow the pattern <environment>:<extractor>-to-<loader>[:<suffix>]"
        )
    return parsed


def expected_state_ids(profile: Profile, names: Translator, suffix: str | None = None) -> list[str]:
    """The state IDs the profile's extractors use (whether or not they ever ran), by the translator's rule."""
    return [names.state_id(profile.meltano_environment, e, profile.loader, suffix) for e in profile.extractors]


def _depth(value: Any) -> int:
    """How deeply a JSON value nests, without recursion."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        v, d = todo.pop()
        deepest = max(deepest, d)
        if d > MAX_DEPTH:
            break
        if isinstance(v, dict):
            todo += [(x, d + 1) for x in v.values()]
        elif isinstance(v, list):
            todo += [(x, d + 1) for x in v]
    return deepest


def parse_state_json(value: str | Mapping) -> dict:
    """The state to set or merge: a JSON object with a `singer_state` object, else StateError."""
    if isinstance(value, Mapping):  # the Airflow form may already hand over an object
        state = dict(value)
    else:
        if not isinstance(value, str) or not value.strip():
            raise StateError("state JSON is required for set and merge")
        try:
            state = json.loads(value)
        except json.JSONDecodeError as exc:
            raise StateError(f"state JSON is not valid JSON: {exc}") from exc
        except RecursionError:
            raise StateError(f"state JSON nests deeper than {MAX_DEPTH} levels: refused") from None
        if not isinstance(state, dict):
            raise StateError(f"state JSON must be an object, got {type(state).__name__}")
    if _depth(state) > MAX_DEPTH:
        raise StateError(f"state JSON nests deeper than {MAX_DEPTH} levels: refused")
    if "singer_state" not in state:
        raise StateError(
            'state JSON lacks the top-level "singer_state" key, e.g. {"singer_state": {"bookmarks": {...}}}'
        )
    if not isinstance(state["singer_state"], dict):
        raise StateError(f'"singer_state" must be an object, got {type(state["singer_state"]).__name__}')
    return state


def deep_merge(base: dict, patch: dict) -> dict:
    """What `meltano state merge` computes: objects merge key by key, anything else replaces."""
    merged = dict(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def state_diff(before: dict, after: dict, state_id: str) -> str:
    """Unified diff of pretty-printed, key-sorted JSON ("" when equal)."""
    import difflib  # a state action's import, not every DAG parse's (the state DAG's form imports this module)

    def lines(state: dict) -> list[str]:
        return json.dumps(state, indent=2, sort_keys=True).splitlines()

    return "\n".join(
        difflib.unified_diff(lines(before), lines(after), f"{state_id} (before)", f"{state_id} (after)", lineterm="")
    )


# --- Meltano calls -------------------------------------------------------------------------


@dataclass
class _Cli:
    environment: str
    env: Mapping[str, str]
    project_root: str | Path
    executable: str | None
    log: Callable[[str], None]

    def state(self, *args: str) -> list[str]:
        """`meltano state <args>`; every output line (run_meltano merges stderr into stdout)."""
        lines: list[str] = []

        def collect(line: str) -> None:  # run_meltano keeps only a tail; parsing needs it all
            lines.append(_ANSI.sub("", line))
            self.log(line)

        from .meltano import run_meltano  # a run's import: the State DAG's parse imports this module

        run_meltano(
            ["state", *args],
            environment=self.environment,
            env=self.env,
            project_root=self.project_root,
            executable=self.executable,
            log=collect,
        )
        return [line.strip() for line in lines if line.strip() and not _LOG_LINE.match(line)]

    def list_ids(self) -> list[str]:
        # IDs go to stdout one per line; what else may slip through the log filter
        # (Python warnings, JSON-formatted logs) has spaces or starts with "{".
        return [line for line in self.state("list") if not re.search(r"\s", line) and not line.startswith("{")]

    def get(self, state_id: str) -> dict:
        # One compact JSON line (`{}` when there is no state) among the log lines:
        # the last JSON object that is not a (JSON-formatted) log record.
        for line in reversed(self.state("get", "--format", "json", "--", state_id)):
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict) and not {"event", "level"} <= value.keys():
                if _depth(value) > MAX_DEPTH:
                    raise StateError(f"the stored state of {state_id!r} nests deeper than {MAX_DEPTH} levels")
                return value
        raise RuntimeError(f"meltano state get {state_id}: no state JSON found in its output")

    def write(self, action: str, state_id: str, state: dict | None) -> None:
        if action == "clear":
            self.state("clear", "--force", "--", state_id)
            return
        # Through a file, not argv: a large state would exceed the kernel's 128 KiB argument limit.
        with tempfile.TemporaryDirectory(prefix="meltano-state-") as tmp:
            path = Path(tmp) / "state.json"
            path.write_text(json.dumps(state), encoding="utf-8")
            force = ["--force"] if action == "set" else []  # merge has no prompt, hence no --force
            self.state(action, *force, "--input-file", str(path), "--", state_id)


# --- backups -------------------------------------------------------------------------------


def write_backup(backup_dir: str | Path, state_id: str, action: str, state: dict) -> Path:
    """Write {state_id, taken_at, action, state, empty} atomically (tmp + rename); return its path."""
    now = datetime.now(UTC)
    # ':' '/' '.' out, for one flat directory per ID; the hash keeps `dev:a` and `dev_a` apart.
    safe_id = re.sub(r"[^A-Za-z0-9_-]", "_", state_id) + "-" + hashlib.sha256(state_id.encode()).hexdigest()[:10]
    directory = Path(backup_dir) / safe_id
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{now:%Y%m%dT%H%M%S.%fZ}.json"
    record = {"state_id": state_id, "taken_at": now.isoformat(), "action": action, "state": state, "empty": not state}
    if not state:
        record["note"] = "there was no previous state (restore = clear)"
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(record, f, indent=2, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())  # on disk before the state changes
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# --- the entry point -----------------------------------------------------------------------


def run_state_action(
    action: str,
    state_id: str | None = None,
    state_json: str | Mapping | None = None,
    *,
    profile: Profile,
    project_root: str | Path,
    backup_dir: str | Path,
    names: Translator,
    env: Mapping[str, str] | None = None,
    dry_run: bool = True,
    known_ids: Sequence[str] | None = None,
    expected_ids: Sequence[str] | None = None,
    is_source_busy: Callable[[str], str | None] | None = None,
    executable: str | None = None,
    log: Callable[[str], None] = print,
) -> StateResult:
    """Run one state action on the Meltano project at `project_root`; raise StateError (nothing
    written) when the request is refused. A write first backs the previous state up in `backup_dir`.

    `known_ids` skips the `meltano state list` call when the caller already has it;
    `expected_ids` are the IDs the configured extractors use (the plan's, with any
    `state_id_suffix`; default: the translator's rule without one).
    """
    cli = _Cli(
        profile.meltano_environment, profile.environment() if env is None else env, project_root, executable, log
    )
    action = str(action or "").strip().lower()
    if action not in ACTIONS:
        raise StateError(f"unknown action {action!r}: expected one of {', '.join(ACTIONS)}")
    if not isinstance(dry_run, bool):
        raise StateError(f"dry_run must be true or false, got {dry_run!r}")
    if action == "list":
        ids = cli.list_ids()
        return StateResult(
            action, None, dry_run, state_ids=ids, message=f"{len(ids)} state ID(s): {', '.join(ids) or 'none'}"
        )
    # Cheap checks first: no Meltano call for a malformed request.
    if not isinstance(state_id, str) or not state_id.strip():
        raise StateError(f"a state ID is required for {action}")
    state_id = state_id.strip()
    patch = parse_state_json(state_json or "") if action in ("set", "merge") else None
    expected = list(expected_ids) if expected_ids is not None else expected_state_ids(profile, names)
    _check_target(action, state_id, profile, cli, known_ids, expected, names)
    writes = action in WRITE_ACTIONS and not dry_run
    if writes and is_source_busy is not None and (reason := is_source_busy(state_id)):
        raise StateError(f"refusing to {action} {state_id!r}: {reason}")
    try:
        return _act(action, state_id, patch, cli, writes, Path(backup_dir), log)
    except RecursionError:
        raise StateError(f"the state of {state_id!r} nests too deeply to diff or merge") from None


def _check_target(
    action: str,
    state_id: str,
    profile: Profile,
    cli: _Cli,
    known_ids: Sequence[str] | None,
    expected: list[str],
    names: Translator,
) -> None:
    known = list(known_ids) if known_ids is not None else cli.list_ids()
    if state_id not in known and not (action == "set" and state_id in expected):
        hint = f"; set may also create a never-run extractor's ID: {', '.join(expected)}"
        raise StateError(
            f"unknown state ID {state_id!r} (known: {', '.join(known) or 'none'})" + (hint if action == "set" else "")
        )
    parsed = names.parse_state_id(state_id)
    if action in WRITE_ACTIONS and parsed is not None and parsed.environment != profile.meltano_environment:
        raise StateError(
            f"state ID {state_id!r} belongs to environment {parsed.environment!r}, not to this "
            f"profile's {profile.meltano_environment!r}: refusing to {action} it"
        )


def _act(
    action: str,
    state_id: str,
    patch: dict | None,
    cli: _Cli,
    writes: bool,
    backup_dir: Path,
    log: Callable[[str], None],
) -> StateResult:
    before = cli.get(state_id)
    if action == "get":
        return StateResult(
            action,
            state_id,
            not writes,
            before=before,
            after=before,
            message=f"state of {state_id}" + ("" if before else ": empty"),
        )
    if action == "set":
        expected = patch or {}
    elif action == "merge":
        expected = deep_merge(before, patch or {})
    else:  # clear: `meltano state get` then prints {}
        expected = {}
    if not writes:
        diff = state_diff(before, expected, state_id)
        return StateResult(
            action,
            state_id,
            True,
            before=before,
            after=expected,
            diff=diff,
            message=f"dry run: {action} {state_id} would "
            + ("change the state (see diff)" if diff else "change nothing")
            + "; nothing written",
        )
    try:
        backup = write_backup(backup_dir, state_id, action, before)
    except OSError as exc:
        raise StateError(
            f"could not write the backup of {state_id!r} under {backup_dir}: {exc}; state not modified"
        ) from exc
    log(f"backup of {state_id} written to {backup}")
    cli.write(action, state_id, patch)
    after = cli.get(state_id)  # read back: report what Meltano actually holds now
    message = f"{action} {state_id} done; backup: {backup}"
    if after != expected:
        message += " (WARNING: the state read back differs from the expected result)"
    return StateResult(
        action,
        state_id,
        False,
        before=before,
        after=after,
        diff=state_diff(before, after, state_id),
        backup_path=str(backup),
        message=message,
    )
