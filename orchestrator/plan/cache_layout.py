"""The compact part of a plan cache entry (cache.py): the dbt DAGs' long tuples (models, tests,
outlets, a task's selection and relations) as runs of one pool of distinct values, and the Assets
as a part of their own, decoded when the first is read (asset_table.py).

A 10,000-model plan names each model's unique_id in its DAG's `models`, its task's `models` and
its task's `relations`, and each Asset in the DAG's and the task's `outlets` and the `relations`:
decoded field by field, every occurrence was a string of its own. Here each distinct value is
decoded once (the pool), a tuple that two fields share (a DAG's and its one task's models) is one
tuple, and a tuple whose values came into the pool together (a DAG's models, its tests) is a slice
of it, copied without a lookup per value.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Mapping
from dataclasses import replace
from itertools import chain
from typing import Any

import msgspec

from .asset_table import AssetTable
from .model import AssetSpec, DbtDag

_LONG = 8  # a tuple at least this long is stored apart, in the pool
_DAG_FIELDS = ("outlets", "models", "tests")
_TASK_FIELDS = ("args", "models", "outlets", "relations", "upstream")
_SWAP = sys.byteorder != "little"  # index arrays are stored little-endian


class Pool:
    """Distinct values (by type and value: True is not 1) and long tuples, as they are encoded."""

    def __init__(self) -> None:
        self.values: list[Any] = []
        self.seqs: list[tuple[bool, bytes]] = []
        self._value: dict[tuple[type, Any], int] = {}
        self._seq: dict[tuple, int] = {}

    def ref(self, value: Any) -> int:
        key = (type(value), value)
        try:
            found = self._value.get(key)
        except TypeError:  # unhashable (a list or dict in an extra): a value of its own
            self.values.append(value)
            return len(self.values) - 1
        if found is None:
            found = self._value[key] = len(self.values)
            self.values.append(value)
        return found

    def seq(self, values: tuple) -> int:
        found = self._seq.get(values)
        if found is None:
            found = self._seq[values] = len(self.seqs)
            self.seqs.append(self._runs_or_indices(values))
        return found

    def _runs_or_indices(self, values: tuple) -> tuple[bool, bytes]:
        """(True, start, stop, start, stop...) when the values are few runs of the pool: the first
        tuple to name a value puts it in the pool, so a DAG's models or tests are one run, and a run
        is a slice to copy. Else (False, each value's index)."""
        indices = list(map(self.ref, values))
        runs: list[int] = []
        for i in indices:
            if runs and runs[-1] == i:
                runs[-1] = i + 1
            else:
                runs += (i, i + 1)
        if len(runs) * 4 <= len(indices):  # runs of 8 or more on average
            return True, _plain_indices(runs)
        return False, _plain_indices(indices)


def _array(raw: bytes) -> array:
    out = array("I")
    out.frombytes(raw)
    if _SWAP:
        out.byteswap()
    return out


def encode_assets(assets: Mapping[str, AssetSpec]) -> msgspec.Raw:
    """The Assets, encoded apart: the cached load skips their bytes (asset_table.py)."""
    return msgspec.Raw(msgspec.msgpack.encode(dict(assets)))


def _plain_indices(numbers: list[int]) -> bytes:
    out = array("I", numbers)
    if _SWAP:
        out.byteswap()
    return out.tobytes()


_ASSETS = msgspec.msgpack.Decoder(dict[str, AssetSpec])


def decode_assets(raw: msgspec.Raw) -> AssetTable:
    """The Assets of an entry, decoded when the first is read. AssetSpec is a gc=False Struct: the
    collector, on again by then, never tracks them."""
    return AssetTable(lambda: _ASSETS.decode(raw))


# A DAG's long tuples: (task number, -1 for the DAG itself; field; sequence number). A task's
# `relations` are two: ("relations", its unique_ids) then ("", their Assets).
Refs = list[tuple[int, str, int]]


def encode_dbt(pool: Pool, dag: DbtDag) -> tuple[DbtDag, Refs]:
    """The DAG with its long tuples left empty, and where they are in the pool's sequences."""
    refs: Refs = []

    def strip(where: int, obj: Any, names: tuple[str, ...]) -> dict[str, Any]:
        empty: dict[str, Any] = {}
        for name in names:
            value = getattr(obj, name)
            if len(value) < _LONG:
                continue
            if name == "relations":  # (unique_id, Asset) pairs: the ids, then the Assets
                refs.append((where, name, pool.seq(tuple(u for u, _ in value))))
                refs.append((where, "", pool.seq(tuple(a for _, a in value))))
            else:
                refs.append((where, name, pool.seq(value)))
            empty[name] = ()
        return empty

    tasks = tuple(replace(t, **strip(i, t, _TASK_FIELDS)) for i, t in enumerate(dag.tasks))
    return replace(dag, tasks=tasks, **strip(-1, dag, _DAG_FIELDS)), refs


def decode_dbt(pool: list[Any], seqs: list[tuple[bool, bytes]], dags: list[DbtDag], refs: list[Refs]) -> None:
    """Put the long tuples back into the just decoded (not yet shared) frozen DAGs and tasks."""
    made: dict[int, tuple] = {}
    ids: tuple = ()
    for dag, where in zip(dags, refs, strict=True):
        for task, name, number in where:
            value = made.get(number)
            if value is None:
                value = made[number] = _seq(pool, *seqs[number])
            if name == "relations":  # its ids: its Assets come next
                ids = value
                continue
            target = dag if task < 0 else dag.tasks[task]
            if not name:
                name, value = "relations", tuple(zip(ids, value, strict=True))
            object.__setattr__(target, name, value)


def _seq(pool: list[Any], runs: bool, raw: bytes) -> tuple:
    numbers = _array(raw)
    if not runs:
        return tuple(map(pool.__getitem__, numbers))
    if len(numbers) == 2:
        return tuple(pool[numbers[0] : numbers[1]])
    bounds = iter(numbers)
    return tuple(chain.from_iterable(pool[start:stop] for start, stop in zip(bounds, bounds)))  # noqa: B905
