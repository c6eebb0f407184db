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
Each dbt DAG's node lists and dbt arguments are a part of their own too (`_DbtNodes`), decoded on
their first read (model.Deferred): a DAG file renders without them, and the task that runs reads
its own DAG's.
"""

from __future__ import annotations

import gc
import hashlib
import os
import struct
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import fields
from functools import partial
from itertools import chain, compress
from pathlib import Path
from typing import Any

import msgspec

from .asset_table import AssetTable
from .model import KINDS, AlertingDag, AssetSpec, DagSpec, DbtDag, Issue, MeltanoDag, Plan, StateDag, TaskSpec, TickDag

_VERSION = "23"  # bump when the plan's shape or rules change


class _Header(msgspec.Struct, array_like=True):
    inputs: list[tuple[str, int, int]]  # path, mtime_ns, size (-1, -1: missing)
    variables: dict[str, str | None]


class _DbtNodes(msgspec.Struct, array_like=True):
    """A dbt DAG's deferred fields (model.Deferred): what its tasks read when they run."""

    models: tuple[str, ...]
    tests: tuple[str, ...]
    # Its owners, compactly: its distinct owners, and for each of its models then tests the index
    # of its owner there (0: none); or, when an owner is not of its own nodes, the dict as it is.
    # As a plain dict they were a quarter of the entry.
    owner_names: list[str]
    owner_index: bytes | list[int]
    owners: dict[str, str]
    inputs: dict[str, tuple[str, ...]]
    always_build: tuple[str, ...]
    # each task's args, models (None: the DAG's own, as in a DAG of one task) and relations
    tasks: list[tuple[tuple[str, ...], tuple[str, ...] | None, tuple[tuple[str, str], ...]]]


class _Dbt(msgspec.Struct, array_like=True):
    dag: DbtDag  # without its deferred fields, nor its tasks'
    counts: tuple[int, int]  # its models and tests (DbtDag.node_counts)
    nodes: msgspec.Raw  # _DbtNodes, decoded on the first read of a deferred field


class _Body(msgspec.Struct, array_like=True):
    """The plan, by kind: `order` is each DAG's kind (its index in KINDS), in the plan's order."""

    order: bytes
    tick: list[TickDag]
    meltano: list[MeltanoDag]
    dbt: list[_Dbt]
    meltano_state: list[StateDag]
    alerting: list[AlertingDag]
    assets: msgspec.Raw  # dict[str, AssetSpec], decoded when the first Asset is read (asset_table.py)
    warnings: list[Issue]
    errors: list[Issue]
    profile: str
    placement: dict[str, dict[str, Any]]


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
_NODES = msgspec.msgpack.Decoder(_DbtNodes)


def _encode(inputs: list[tuple[str, int, int]], variables: dict[str, str | None], plan: Plan) -> bytes:
    order = bytes(KINDS.index(d.kind) for d in plan.dags)
    body = _Body(
        order=order,
        tick=[d for d in plan.dags if isinstance(d, TickDag)],
        meltano=[d for d in plan.dags if isinstance(d, MeltanoDag)],
        dbt=[_dbt_entry(d) for d in plan.dags if isinstance(d, DbtDag)],
        meltano_state=[d for d in plan.dags if isinstance(d, StateDag)],
        alerting=[d for d in plan.dags if isinstance(d, AlertingDag)],
        assets=msgspec.Raw(msgspec.msgpack.encode(dict(plan.assets))),
        warnings=plan.warnings,
        errors=plan.errors,
        profile=plan.profile,
        placement=plan.placement,
    )
    header = msgspec.msgpack.encode(_Header(inputs, variables))
    return _LENGTH.pack(len(header)) + header + msgspec.msgpack.encode(body)


def _light(obj: DbtDag | TaskSpec) -> dict[str, Any]:
    """A dataclass's fields but its deferred ones, as a map: msgspec decodes it into the class
    with those fields unset (_defer drops them in any case)."""
    return {f.name: getattr(obj, f.name) for f in fields(obj) if f.name not in obj.DEFERRED}


def _dbt_entry(dag: DbtDag) -> _Dbt:
    ids = (*dag.models, *dag.tests)
    names: list[str] = []
    index: bytes | list[int] = b""
    owners = dag.owners
    if owners and owners.keys() <= set(ids):
        names = sorted(set(owners.values()))
        number = {n: i for i, n in enumerate(names, 1)}
        index = [number.get(owners.get(u), 0) for u in ids]  # type: ignore[arg-type]
        index = bytes(index) if len(names) < 256 else index
        owners = {}
    nodes = _DbtNodes(
        models=dag.models,
        tests=dag.tests,
        owner_names=names,
        owner_index=index,
        owners=owners,
        inputs=dag.inputs,
        always_build=dag.always_build,
        tasks=[(t.args, None if t.models == dag.models else t.models, t.relations) for t in dag.tasks],
    )
    light = _light(dag) | {"tasks": [_light(t) for t in dag.tasks]}
    return _Dbt(light, (len(dag.models), len(dag.tests)), msgspec.Raw(msgspec.msgpack.encode(nodes)))  # type: ignore[arg-type]


class _Part:
    """One dbt DAG's `_DbtNodes`, decoded once for the DAG and all its tasks (a DAG of per-model
    tasks has thousands: each decoding the part on its own made reading them all quadratic). It
    refers to no DAG or task: no reference cycle, and a task kept after its plan still reads."""

    __slots__ = ("raw", "nodes")

    def __init__(self, raw: msgspec.Raw):
        self.raw: msgspec.Raw | None = raw
        self.nodes: _DbtNodes | None = None

    def get(self) -> _DbtNodes:
        if self.nodes is None:
            assert self.raw is not None
            self.nodes, self.raw = _NODES.decode(self.raw), None
        return self.nodes


def _defer(entry: _Dbt) -> DbtDag:
    """The entry's DAG, its deferred fields (and its tasks') to be decoded on their first read."""
    dag, part = entry.dag, _Part(entry.nodes)
    state = dag.__dict__
    for name in DbtDag.DEFERRED:
        state.pop(name, None)
    state["_fill"] = partial(_fill_dag, part)
    state["_counts"] = entry.counts
    for i, task in enumerate(dag.tasks):
        state = task.__dict__
        for name in TaskSpec.DEFERRED:
            state.pop(name, None)
        state["_fill"] = partial(_fill_task, part, i)
    return dag


def _fill_dag(part: _Part, dag: DbtDag) -> None:
    nodes = part.get()
    owners = nodes.owners
    if nodes.owner_names:  # each node's owner where it has one (index not 0), by C loops
        owner: list[Any] = [None, *nodes.owner_names]  # index 0: no owner (left out below)
        index = nodes.owner_index
        named = zip(chain(nodes.models, nodes.tests), map(owner.__getitem__, index), strict=True)
        owners = dict(compress(named, index) if 0 in index else named)
    state = dag.__dict__  # a frozen dataclass: its fields set as msgspec sets them
    state.update(
        models=nodes.models, tests=nodes.tests, owners=owners, inputs=nodes.inputs, always_build=nodes.always_build
    )
    state.pop("_fill", None)  # (a second thread's fill may have been first: the same values)


def _fill_task(part: _Part, i: int, task: TaskSpec) -> None:
    nodes = part.get()
    args, models, relations = nodes.tasks[i]
    task.__dict__.update(args=args, models=nodes.models if models is None else models, relations=relations)
    task.__dict__.pop("_fill", None)


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
    kinds = [iter(body.tick), iter(body.meltano), map(_defer, body.dbt), iter(body.meltano_state), iter(body.alerting)]
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
