"""A cached plan's Assets, read as a mapping name -> AssetSpec, decoded when the first is read.

A 10,000-model plan holds ~9,500 dbt Assets, each with a URI, a group and a 7-key `extra`. Decoded as
one AssetSpec and one dict each they were about half of the dbt DAG file's cached load (~21 of
~38 ms), and the renderer then copied every `extra` anyway (an Airflow Asset gets a dict of its own).
Here the cached load makes none of them: the plan cache (cache.py) keeps the Assets as one msgpack
part of their own, decoded when the first Asset is read (by the renderer, which needs them all in
the DAG processor: there the cost moves, it does not go away). Tried and dropped (BENCHMARKS.md):
the entry's strings in one pool of distinct values, the long tuples as slices of it, and the Assets
as columns made into dicts by C loops: no faster to load than msgspec's own decode, and slower to read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from .model import AssetSpec


class AssetTable(Mapping[str, AssetSpec]):
    """Read-only. `load` gives the Assets, called when the first is read: the cached load reads none,
    a parse that renders reads them all (one decode, as before); `plan_errors.py` never does."""

    __slots__ = ("_load", "_specs")

    def __init__(self, load: Callable[[], dict[str, AssetSpec]]):
        self._load: Callable[[], dict[str, AssetSpec]] | None = load
        self._specs: dict[str, AssetSpec] = {}

    def _all(self) -> dict[str, AssetSpec]:
        if self._load is not None:
            self._specs, self._load = self._load(), None
        return self._specs

    def __getitem__(self, name: str) -> AssetSpec:
        return (self._specs if self._load is None else self._all())[name]

    def __contains__(self, name: object) -> bool:
        return name in self._all()

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())

    def __repr__(self) -> str:
        return f"AssetTable({len(self)} Assets)"
