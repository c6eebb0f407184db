"""A cached plan's Assets, read as a mapping name -> AssetSpec, decoded when the first is read.

A 10,000-model plan holds ~9,500 dbt Assets, each with a URI, a group and a 7-key `extra`. Decoded as
one AssetSpec and one dict each they were about half of the dbt DAG file's cached load (~21 of
~38 ms), and the renderer then copied every `extra` anyway (an Airflow Asset gets a dict of its own).
Here the cached load makes none of them: the plan cache (cache_layout.py) keeps the Assets as one
msgpack part of their own, decoded as plain rows (no AssetSpec) when the first Asset is read, and
`fields(name)` gives the renderer the URI, the group and a copy of the `extra` (as its copy did).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from operator import itemgetter
from typing import Any

from .model import AssetSpec

# One Asset: name, URI, group, extra, relation, database (AssetSpec's fields after its name).
Row = tuple[str, str, str, dict[str, Any], str | None, str | None]


class AssetTable(Mapping[str, AssetSpec]):
    """Read-only. `load` gives the rows, called when the first Asset is read: a parse that renders
    one DAG of its file (a task process) reads few, the cached load itself none."""

    __slots__ = ("_load", "_rows")

    def __init__(self, load: Callable[[], list[Row]]):
        self._load: Callable[[], list[Row]] | None = load
        self._rows: dict[str, Row] = {}

    def _all(self) -> dict[str, Row]:
        if self._load is not None:
            rows, self._load = self._load(), None
            self._rows = dict(zip(map(itemgetter(0), rows), rows, strict=True))  # C loops: no bytecode per Asset
        return self._rows

    def fields(self, name: str) -> tuple[str, str, dict[str, Any]]:
        """(uri, group, extra) of an Asset, the extra a dict of its own: what an Airflow Asset takes."""
        row = (self._rows if self._load is None else self._all())[name]
        return row[1], row[2], row[3].copy()

    def uri(self, name: str) -> str:
        return self._all()[name][1]

    def __getitem__(self, name: str) -> AssetSpec:
        _, uri, group, extra, relation, database = self._all()[name]
        return AssetSpec(uri, group, extra.copy(), relation, database)

    def __contains__(self, name: object) -> bool:
        return name in self._all()

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())

    def __repr__(self) -> str:
        return f"AssetTable({len(self)} Assets)"
