"""A cached plan's Assets, kept as the plan cache stores them (cache_layout.py): columns of indices
into one pool of distinct values, read as a mapping name -> AssetSpec.

A 10,000-model plan holds ~9,500 dbt Assets, each with a URI, a group and a 7-key `extra`. Decoded as
one AssetSpec and one dict each they were about half of the dbt DAG file's cached load (~21 of
~38 ms), and the renderer then copied every `extra` anyway (an Airflow Asset gets a dict of its own).
Here the load makes none of them: the columns are decoded when the first Asset is read, and
`fields(name)` gives the renderer the URI, the group and a fresh `extra` dict (what its copy made
before), without an AssetSpec in between.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any

from .model import AssetSpec


@dataclass(frozen=True)
class Columns:
    """The Assets as columns: `pool` the values the others name by index; one index per Asset in
    each column, in the order of `names`; `keys[shapes[i]]` are Asset i's extra keys, and
    `extras[shapes[i]]` the values of every Asset of those keys, one Asset after the other."""

    pool: Sequence[Any]
    names: array
    uris: array
    groups: array
    relations: array
    databases: array
    shapes: array
    keys: Sequence[tuple[str, ...]]
    extras: Sequence[array]


class AssetTable(Mapping[str, AssetSpec]):
    """Read-only. `load` gives the columns, called when the first Asset is read (a parse that renders
    one DAG of a file, as a task process does, may read few; the cached load itself reads none)."""

    __slots__ = ("_load", "_cols", "_names", "_index", "_rows")

    def __init__(self, load: Callable[[], Columns]):
        self._load: Callable[[], Columns] | None = load
        self._cols: Columns | None = None
        self._names: list[str] = []
        self._index: dict[str, int] = {}
        self._rows: list[tuple] = []

    def _columns(self) -> Columns:
        if self._cols is None:
            assert self._load is not None
            cols, self._load = self._load(), None
            get = cols.pool.__getitem__
            self._names = list(map(get, cols.names))
            self._index = dict(zip(self._names, range(len(self._names)), strict=True))
            # each Asset's extra values, a row each, made by C loops (no bytecode per Asset)
            rows = []
            for shape, (keys, values) in enumerate(zip(cols.keys, cols.extras, strict=True)):
                one = map(get, values)  # cut in rows of len(keys): one iterator, zipped with itself
                rows.append(zip(*[one] * len(keys), strict=False) if keys else repeat((), cols.shapes.count(shape)))
            self._rows = list(map(next, map(rows.__getitem__, cols.shapes)))
            self._cols = cols
        return self._cols

    def fields(self, name: str) -> tuple[str, str, dict[str, Any]]:
        """(uri, group, extra) of an Asset, the extra a dict of its own: what an Airflow Asset takes."""
        cols = self._cols if self._cols is not None else self._columns()
        i = self._index[name]
        extra = dict(zip(cols.keys[cols.shapes[i]], self._rows[i]))  # noqa: B905 - a row is its keys' values
        return cols.pool[cols.uris[i]], cols.pool[cols.groups[i]], extra

    def uri(self, name: str) -> str:
        cols = self._columns()
        return cols.pool[cols.uris[self._index[name]]]

    def __getitem__(self, name: str) -> AssetSpec:
        uri, group, extra = self.fields(name)
        cols, i = self._columns(), self._index[name]
        return AssetSpec(uri, group, extra, cols.pool[cols.relations[i]], cols.pool[cols.databases[i]])

    def __contains__(self, name: object) -> bool:
        self._columns()
        return name in self._index

    def __iter__(self) -> Iterator[str]:
        self._columns()
        return iter(self._names)

    def __len__(self) -> int:
        self._columns()
        return len(self._names)

    def __repr__(self) -> str:
        return f"AssetTable({len(self)} Assets)"
