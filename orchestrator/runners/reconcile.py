"""Row reconciliation: what the tap emitted per stream against what the loader wrote, per table.

Emitted: the extractor's Singer `record_count` METRIC lines of the run (runners/meltano.py).
Written: the rows of the table whose `_sdc_batched_at` is later than the latest one before the
run. Singer loaders (target-duckdb, the SDK's target-postgres...) stamp `_sdc_batched_at` on every
row they insert *or* update, so one comparison covers the three replication shapes:

- append-only (no key): every record is a new row, stamped: written == emitted;
- keyed upsert (incremental or full table): every record inserts or updates its key's row,
  stamped again (the bookmark row a tap re-sends included): written == emitted, unless the tap
  sent one key twice in the run (log-based replication: set `reconcile: off` for that extractor);
- full table replaced (activate_version): the new rows are stamped: written == emitted.

Written < emitted: the loader lost records. Written > emitted: something else wrote the table
during the run, or the tap's metrics undercount.

Without `_sdc_batched_at` (target-duckdb's default): a new or empty table's rows, else the rows
added, which proves a loss only for a stream without key properties (the run's catalog says).
A key sent twice in one run is no loss when the rows equal the loader's own de-duplicated count
(pipelinewise: "Loading N rows into ..."). Cheap by construction: reconcile_probe.py.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from .reconcile_probe import BATCHED_AT, MAX_SCAN_ROWS, Mark, Probe, Written

__all__ = ["BATCHED_AT", "MAX_SCAN_ROWS", "Mark", "Probe", "Written"]  # the probe's, used here and by callers

Status = Literal["ok", "mismatch", "skipped"]


@dataclass(frozen=True)
class StreamCheck:
    relation: str  # schema.table
    extractor: str
    emitted: int | None
    written: int | None
    status: Status
    cause: str = ""  # a mismatch's likely cause, or why it was skipped
    fresh: int | None = None  # rows past the replication key's high-water mark (reconcile_probe.Written)

    def extra(self) -> dict[str, Any]:
        """What the Asset event's `extra` carries."""
        out: dict[str, Any] = {"reconcile": self.status}
        if self.written is not None:
            out["rows_written"] = self.written
        if self.fresh is not None:
            out["rows_new"] = self.fresh  # what dbt.build: changed reads first (plan/changed.py)
        if self.status != "ok" and self.cause:
            out["reconcile_note"] = self.cause
        return out

    def message(self) -> str:
        return (
            f"{self.extractor} -> {self.relation}: the tap emitted {self.emitted} record(s), "
            f"the loader wrote {self.written} row(s): {self.cause}"
        )


class ReconcileError(RuntimeError):
    """A mismatch on an extractor whose `meltano.reconcile` is `fail`: one line, the streams and counts."""


_LOADING = re.compile(r"Loading (\d+) rows into '(?:\"[^\"]*\"\.)?\"(?P<schema>[^\"]+)\"\.\"(?P<table>[^\"]+)\"'")


def loader_counts(lines: list[str]) -> dict[str, int]:
    """Rows a pipelinewise loader (target-duckdb...) says it loaded, per relation: after its own
    de-duplication of a batch by key, so records that shared a key count once."""
    out: dict[str, int] = {}
    for line in lines:
        if m := _LOADING.search(line):
            relation = f"{m['schema']}.{m['table']}".lower()
            out[relation] = out.get(relation, 0) + int(m[1])
    return out


def compare(
    relation: str,
    extractor: str,
    emitted: int | None,
    written: Written | str,
    *,
    keyed: bool | None = None,
    loaded: int | None = None,
    known_defect: str | None = None,
) -> StreamCheck:
    """One table's verdict. `emitted` None: the tap reported no record_count metric at all;
    `written` a string: why the table could not be read; `keyed`: the stream has key properties
    (None: unknown); `loaded`: the rows the loader says it loaded, its batches de-duplicated by key
    (None: it does not say); `known_defect`: what the loader is known to lose."""
    if isinstance(written, str):
        return StreamCheck(relation, extractor, emitted, None, "skipped", written)
    n = written.rows
    if emitted is None:
        if n == 0:
            return StreamCheck(relation, extractor, emitted, n, "ok")
        return StreamCheck(relation, extractor, emitted, n, "skipped", "the tap reports no record_count metric")
    if n == emitted:
        return StreamCheck(relation, extractor, emitted, n, "ok")
    if n > emitted:
        cause = (
            f"{n - emitted} row(s) more than the tap emitted: another writer loaded the table during "
            "the run (two extractors loading one relation?), or the tap's metrics undercount"
        )
        return StreamCheck(relation, extractor, emitted, n, "mismatch", cause)
    if written.how == "delta" and keyed is not False:
        # An upsert's updates add no row: without the stamp, fewer new rows than records proves nothing.
        cause = (
            f"{emitted - n} record(s) updated existing keys or were lost: the loader's metadata columns "
            f"({BATCHED_AT}) would tell"
        )
        return StreamCheck(relation, extractor, emitted, n, "skipped", cause)
    if keyed is not False and loaded is not None and n == loaded:
        # The loader kept one row per key of its batch, and every one of them arrived.
        cause = f"{emitted - n} record(s) shared a key with another record of the run (the loader loaded {loaded})"
        return StreamCheck(relation, extractor, emitted, n, "ok", cause)
    cause = f"{emitted - n} record(s) lost by the loader" + (
        f" ({known_defect})"
        if known_defect
        else ", or the tap sent a key more than once in this run (log-based replication: "
        f"set meltano.reconcile_extractors.{extractor}: off)"
    )
    return StreamCheck(relation, extractor, emitted, n, "mismatch", cause)


def _catalog_streams(sys_dir: Path, extractor: str) -> list[tuple[dict, dict]]:
    """Each stream of the catalog Meltano wrote for the extractor's last run
    (`<.meltano>/run/<extractor>/tap.properties.json`) with its stream-level metadata; [] when there
    is none to read (e.g. before its first run)."""
    try:
        catalog = json.loads((sys_dir / "run" / extractor / "tap.properties.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    out = []
    for stream in catalog.get("streams") or []:
        top = next((m.get("metadata") or {} for m in stream.get("metadata") or [] if not m.get("breadcrumb")), {})
        out.append((stream, top))
    return out


def _table(stream: dict, table_of: Any) -> str:
    return table_of(str(stream.get("tap_stream_id") or stream.get("stream") or ""))


def catalog_replication_keys(sys_dir: Path, extractor: str, table_of: Any) -> dict[str, str]:
    """Table -> its stream's replication key, from the catalog of the extractor's last run."""
    out = {}
    for stream, top in _catalog_streams(sys_dir, extractor):
        key = stream.get("replication_key") or top.get("replication-key")
        if isinstance(key, str) and key:
            out[_table(stream, table_of)] = key
    return out


def catalog_keys(sys_dir: Path, extractor: str, table_of: Any) -> dict[str, bool]:
    """Table -> whether its stream has key properties, from the catalog Meltano wrote for this run."""
    return {
        _table(stream, table_of): bool(stream.get("key_properties") or top.get("table-key-properties"))
        for stream, top in _catalog_streams(sys_dir, extractor)
    }


class Reconciliation:
    """One Meltano run's reconciliation: `before()` inside the warehouse lock before the run,
    `after(metric_lines)` inside it after. `streams`: relation -> (table its records are counted
    by, extractor). Never fails the run itself: a warehouse it cannot read is a skipped check."""

    def __init__(
        self,
        probe: Probe | None,
        streams: Mapping[str, tuple[str, str]],
        *,
        table_of: Any,
        known_defect: str | None = None,
        sys_dir: Path | None = None,
        log: Any = print,
    ):
        self.probe, self.streams, self.table_of, self.sys_dir = probe, dict(streams), table_of, sys_dir
        self.known_defect, self.log = known_defect, log
        self.marks: dict[str, Mark] = {}
        self.error: str | None = None
        self.seconds = 0.0  # spent reading the warehouse and the catalog: the overhead on the run

    def before(self) -> None:
        if self.probe is None or not self.streams:
            return
        started = time.monotonic()
        keys: dict[str, str] = {}
        if self.sys_dir is not None:
            by_extractor: dict[str, dict[str, str]] = {}
            for relation, (table, extractor) in self.streams.items():
                if extractor not in by_extractor:
                    by_extractor[extractor] = catalog_replication_keys(self.sys_dir, extractor, self.table_of)
                if key := by_extractor[extractor].get(table):
                    keys[relation] = key
        try:
            self.marks = self.probe.marks(sorted(self.streams), keys)
        except Exception as exc:  # noqa: BLE001 - the warehouse unreadable: the load still runs
            self.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        self.seconds += time.monotonic() - started

    def after(self, metric_lines: list[str]) -> list[StreamCheck]:
        from .meltano import record_counts  # meltano.py is the runner; this module only reads its lines

        if self.probe is None or not self.streams:
            return []
        started = time.monotonic()
        written: dict[str, Written | str] = {}
        if self.error is None:
            try:
                written = self.probe.written(self.marks)
            except Exception as exc:  # noqa: BLE001
                self.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        counts: dict[str, dict[str, int]] = {}
        keyed: dict[str, dict[str, bool]] = {}
        loaded = loader_counts(metric_lines)
        checks = []
        for relation, (table, extractor) in sorted(self.streams.items()):
            if extractor not in counts:
                counts[extractor] = record_counts(metric_lines, extractor, self.table_of)
                keyed[extractor] = catalog_keys(self.sys_dir, extractor, self.table_of) if self.sys_dir else {}
            emitted = counts[extractor].get(table, 0) if counts[extractor] else None
            got = written.get(relation, f"the warehouse could not be read: {self.error}")
            check = compare(
                relation,
                extractor,
                emitted,
                got,
                keyed=keyed[extractor].get(table),
                loaded=loaded.get(relation),
                known_defect=self.known_defect,
            )
            checks.append(replace(check, fresh=got.fresh) if isinstance(got, Written) else check)
        self.seconds += time.monotonic() - started
        for c in checks:
            if c.status == "mismatch":
                self.log(f"RECONCILE MISMATCH {c.message()}")
            else:
                self.log(f"reconcile {c.status}: {c.relation} emitted={c.emitted} written={c.written} {c.cause}")
        return checks


def meltano_streams(dag: Any, assets: Mapping[str, Any]) -> dict[str, tuple[str, str, str]]:
    """A plan's Meltano DAG: Asset -> (relation, the table its records are counted by, extractor).
    The extractor is the one the Asset's `extra` names (the default translator's), else the DAG's first."""
    out = {}
    for task in dag.tasks:
        for table, asset in task.relations:
            spec = assets.get(asset)
            if spec is None or not spec.relation:
                continue
            named = spec.extra.get("extractor") if isinstance(spec.extra, dict) else None
            extractor = named if named in dag.extractors else dag.extractors[0]
            out[asset] = (str(spec.relation), str(table), str(extractor))
    return out


def reconciliation(config: Any, env: Mapping[str, str], streams: Mapping[str, tuple[str, str]], *, log: Any = print):
    """The Reconciliation of one run of `config`'s loader on `streams` (relation -> (table,
    extractor)), leaving out the extractors whose `meltano.reconcile` mode is off."""
    from ..plan.known_loaders import defect_hint
    from ..plan.meltano_project import load_meltano_project
    from ..plan.translator import load_translator
    from .dbt_profile import DbtProfileError, resolve_target

    active = {r: te for r, te in streams.items() if config.meltano.reconcile_mode(te[1]) != "off"}
    probe, defect = None, None
    if active:
        try:
            probe = Probe(resolve_target(config, env), config.dbt_project_dir)
        except (DbtProfileError, ValueError) as exc:
            log(f"reconcile: rows not checked: {str(exc).splitlines()[0]}")
        try:
            project = load_meltano_project(config.meltano_project, config.profile.meltano_environment)
            defect = defect_hint(project.loaders[config.profile.loader])
        except Exception:  # noqa: BLE001 - the cause's wording only
            defect = None
    sys_dir = Path(config.meltano_project) / (env.get("MELTANO_SYS_DIR_ROOT") or ".meltano")  # an absolute one wins
    table_of = load_translator(config).stream_table
    return Reconciliation(probe, active, table_of=table_of, known_defect=defect, sys_dir=sys_dir, log=log)
