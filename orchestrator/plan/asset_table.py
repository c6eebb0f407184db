"""A cached plan's Assets, read as a mapping name -> AssetSpec, decoded when the first is read.

A 10,000-model plan holds ~9,500 dbt Assets, each with a URI, a group and a 7-key `extra`. Decoded as
one AssetSpec and one dict each they were about half of the dbt DAG file's cached load (~21 of
~38 ms), and the renderer then copied every `extra` anyway (an Airflow Asset gets a dict of its own).
Here the cached load makes none of them: the plan cache (cache_layout.py) keeps the Assets as one
msgpack part of their own, decoded when the first Asset is read (by the renderer, which needs
them all in the DAG processor: the cost moves, it does not go away). Tried and dropped: columns of
indices into the entry's pool of distinct values, made into dicts by C loops on the first read:
cheaper to decode, but making 9,500 extras from rows cost the renderer more than msgspec's decode.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from .model import AssetSpec


class AssetTable(Mapping[str, AssetSpec]):
    """Read-only. `load` gives the Assets, called when the first is read: a parse that renders
    one DAG of its file (a task process) may read none (a tick-scheduled DAG), the cached load none."""

    __slots__ = ("_load", "_specs")

    def __init__(self, load: Callable[[], dict[str, AssetSpec]]):
        self._load: Callable[[], dict[str, AssetSpec]] | None = load
        self._specs: dict[str, AssetSpec] = {}

    def _all(self) -> dict[str, AssetSpec]:
        if self._load is not None:
            self._specs, self._load = self._load(), None
        return self._specs

    def fields(self, name: str) -> tuple[str, str, dict[str, Any]]:
        """(uri, group, extra) of an Asset, the extra a dict of its own: what an Airflow Asset takes."""
        spec = (self._specs if self._load is None else self._all())[name]
        return spec.uri, spec.group, dict(spec.extra)

    def uri(self, name: str) -> str:
        return self._all()[name].uri

    def __getitem__(self, name: str) -> AssetSpec:
        return self._all()[name]

    def __contains__(self, name: object) -> bool:
        return name in self._all()

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())

    def __repr__(self) -> str:
        return f"AssetTable({len(self)} Assets)"
