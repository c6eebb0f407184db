"""An on-disk cache of plans, valid while none of their input files changed.

Airflow parses every DAG file every 30 s, each in a fresh process, so an
in-memory cache would never hit. A cached plan is reused when every input file
(and every directory an include glob reads) has the same size and mtime, and every
environment variable the build looked up has the same value.

The entry is msgpack (msgspec): a small header (the inputs and variables to check) and then the
plan, each kind's DAGs in a list of their own class, so msgspec decodes them straight into the
model's dataclasses (no tagged union needed). A stale entry is known from the header alone. The
Assets are a part of their own, decoded when the first is read (asset_table.py): the cached load
of the dbt kind at 10,000 models skips ~9,500 of them, which the renderer decodes when it needs them.
"""

from __future__ import annotations

import gc
import hashlib
import os
import struct
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from itertools import chain, compress
from pathlib import Path
from typing import Any

import msgspec

from .asset_table import AssetTable
from .model import KINDS, AlertingDag, AssetSpec, DagSpec, DbtDag, Issue, MeltanoDag, Plan, StateDag, TickDag

_VERSION = "22"  # bump when the plan's shape or rules change


class _Header(msgspec.Struct, array_like=True):
    inputs: list[tuple[str, int, int]]  # path, mtime_ns, size (-1, -1: missing)
    variables: dict[str, str | None]


class _Body(msgspec.Struct, array_like=True):
    """The plan, by kind: `order` is each DAG's kind (its index in KINDS), in the plan's order."""

    order: bytes
    tick: list[TickDag]
    meltano: list[MeltanoDag]
    dbt: list[DbtDag]
    meltano_state: list[StateDag]
    alerting: list[AlertingDag]
    assets: msgspec.Raw  # dict[str, AssetSpec], decoded when the first Asset is read (asset_table.py)
    warnings: list[Issue]
    errors: list[Issue]
    profile: str
    placement: dict[str, dict[str, Any]]
    # Each dbt DAG's owners, compactly: its distinct owners, and for each of its models then tests
    # the index of its owner there (0: none). As a plain dict they were a quarter of the entry.
    dbt_owners: list[tuple[list[str], bytes | list[int]]]


# The body up to its errors, every field before them left undecoded (msgspec only skips over a
# Raw's bytes, and ignores the fields after): what the errors file (dags/plan_errors.py) reads of the
# whole plan on each parse, without making its tens of thousands of objects. Derived from _Body's
# fields, so that the two can never disagree on the position of `errors`.
_ERRORS_AT = _Body.__struct_fields__.index("errors")
_Errors = msgspec.defstruct(
    "_Errors",
    [(name, msgspec.Raw) for name in _Body.__struct_fields__[:_ERRORS_AT]] + [("errors", list[Issue])],
    array_like=True,
)


_LENGTH = struct.Struct("<I")  # the header's length, before it
_HEADER = msgspec.msgpack.Decoder(_Header)
_BODY = msgspec.msgpack.Decoder(_Body)
_ERRORS = msgspec.msgpack.Decoder(_Errors)
_ASSETS = msgspec.msgpack.Decoder(dict[str, AssetSpec])  # gc=False Structs: never tracked, decoded when read


def _encode(inputs: list[tuple[str, int, int]], variables: dict[str, str | None], plan: Plan) -> bytes:
    order = bytes(KINDS.index(d.kind) for d in plan.dags)
    dbt = [d for d in plan.dags if isinstance(d, DbtDag)]
    owners = [_owner_index(d) for d in dbt]
    body = _Body(
        order=order,
        tick=[d for d in plan.dags if isinstance(d, TickDag)],
        meltano=[d for d in plan.dags if isinstance(d, MeltanoDag)],
        dbt=[replace(d, owners={}) if o is not None else d for d, o in zip(dbt, owners, strict=True)],
        meltano_state=[d for d in plan.dags if isinstance(d, StateDag)],
        alerting=[d for d in plan.dags if isinstance(d, AlertingDag)],
        assets=msgspec.Raw(msgspec.msgpack.encode(dict(plan.assets))),
        warnings=plan.warnings,
        errors=plan.errors,
        profile=plan.profile,
        placement=plan.placement,
        dbt_owners=[o or ([], b"") for o in owners],
    )
    header = msgspec.msgpack.encode(_Header(inputs, variables))
    return _LENGTH.pack(len(header)) + header + msgspec.msgpack.encode(body)


def _owner_index(dag: DbtDag) -> tuple[list[str], bytes | list[int]] | None:
    """`_Body.dbt_owners` of one DAG; None when an owner is not of its models or tests (kept as is)."""
    if not dag.owners:
        return None
    ids = (*dag.models, *dag.tests)
    if not dag.owners.keys() <= set(ids):
        return None
    names = sorted(set(dag.owners.values()))
    number = {n: i for i, n in enumerate(names, 1)}
    index = [number.get(dag.owners.get(u), 0) for u in ids]  # type: ignore[arg-type]
    return names, bytes(index) if len(names) < 256 else index


def _fresh_body(raw: bytes, env: Mapping[str, str]) -> memoryview | None:
    """The entry's body, or None when an input changed since it was built."""
    view = memoryview(raw)
    (size,) = _LENGTH.unpack_from(view)
    header = _HEADER.decode(view[_LENGTH.size : _LENGTH.size + size])
    if not all(_stat(p) == (p, m, s) for p, m, s in header.inputs):
        return None
    if not all(env.get(k) == v for k, v in header.variables.items()):
        return None
    return view[_LENGTH.size + size :]


def _decode(raw: bytes, env: Mapping[str, str]) -> Plan | None:
    """The cached plan, or None when an input changed since it was built."""
    view = _fresh_body(raw, env)
    if view is None:
        return None
    body = _BODY.decode(view)
    for dag, (names, index) in zip(body.dbt, body.dbt_owners, strict=True):
        if names:  # a frozen dataclass, just decoded and not shared yet
            owner = [None, *names]
            ids = chain(dag.models, dag.tests)  # each node's owner where it has one (index not 0), by C loops
            named = zip(ids, map(owner.__getitem__, index), strict=True)
            object.__setattr__(dag, "owners", dict(compress(named, index) if 0 in index else named))
    kinds = [iter(body.tick), iter(body.meltano), iter(body.dbt), iter(body.meltano_state), iter(body.alerting)]
    dags: list[DagSpec] = [next(kinds[k]) for k in body.order]
    assets = body.assets
    return Plan(
        dags, AssetTable(lambda: _ASSETS.decode(assets)), body.warnings, body.errors, body.profile, body.placement
    )


def _stat(path: str) -> tuple[str, int, int]:
    try:
        st = os.stat(path)
        return path, st.st_mtime_ns, st.st_size
    except OSError:
        return path, -1, -1


class RecordingEnv(dict):
    """The environment a plan is built with, remembering which variables the build looked up
    (a `${VAR}` in meltano.yml): the cached plan is valid only while they keep their values."""

    def __init__(self, env: Mapping[str, str]):
        super().__init__(env)
        self.read: dict[str, str | None] = {}

    def _note(self, key: object) -> None:
        if isinstance(key, str):
            self.read.setdefault(key, dict.get(self, key))

    def __contains__(self, key: object) -> bool:
        self._note(key)
        return super().__contains__(key)

    def __getitem__(self, key: str) -> str:
        self._note(key)
        return super().__getitem__(key)

    def get(self, key: str, default=None):
        self._note(key)
        return super().get(key, default)


@contextmanager
def gc_paused() -> Iterator[None]:
    """The garbage collector off while a plan is built or loaded: both allocate hundreds of
    thousands of small objects and free none in cycles, so its passes were about 30% of the CPU."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


Build = Callable[[], tuple[Plan, list[str], dict[str, str | None]]]
_UNREADABLE = (OSError, ValueError, struct.error, msgspec.DecodeError, StopIteration)  # an entry to rebuild


def cached_plan(cache_dir: Path | None, key_parts: tuple, build: Build, env: Mapping[str, str]) -> Plan:
    """Return the cached plan for `key_parts` if its inputs are unchanged, else `build()` and store it.

    `build` returns the plan, the files (and directories) it read and the environment variables
    it looked up with their values; `env` is the environment to check those against now.
    """
    if cache_dir is None:
        return build()[0]
    path = _entry(cache_dir, key_parts)
    try:
        cached = _decode(path.read_bytes(), env)
        if cached is not None:
            return cached
    except _UNREADABLE:
        pass  # missing, torn or of another shape: rebuild
    return _store(path, build)


def cached_errors(cache_dir: Path | None, key_parts: tuple, build: Build, env: Mapping[str, str]) -> list[Issue]:
    """`cached_plan(...).errors`, decoding only them from a valid entry."""
    if cache_dir is None:
        return build()[0].errors
    path = _entry(cache_dir, key_parts)
    try:
        view = _fresh_body(path.read_bytes(), env)
        if view is not None:
            return list(getattr(_ERRORS.decode(view), "errors"))  # noqa: B009 - a defstruct: mypy knows no fields
    except _UNREADABLE:
        pass
    return _store(path, build).errors


def _entry(cache_dir: Path, key_parts: tuple) -> Path:
    key = hashlib.sha256(repr((_VERSION, key_parts)).encode()).hexdigest()[:24]
    return cache_dir / f"plan-{key}.msgpack"


def _store(path: Path, build: Build) -> Plan:
    """`build()`, written to the entry at `path` (when it can be)."""
    cache_dir = path.parent
    plan, files, variables = build()
    inputs = [_stat(f) for f in files]
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=cache_dir, delete=False, suffix=".tmp") as tmp:
            tmp.write(_encode(inputs, variables, plan))
        os.replace(tmp.name, path)  # atomic: a concurrent parse sees the old or the new entry
    except OSError:
        pass  # a read-only deployment simply does not cache
    return plan
