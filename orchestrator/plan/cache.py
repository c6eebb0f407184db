"""An on-disk cache of plans, valid while none of their input files changed.

Airflow parses every DAG file every 30 s, each in a fresh process, so an
in-memory cache would never hit. A cached plan is reused when every input file
(and every directory an include glob reads) has the same size and mtime, and every
environment variable the build looked up has the same value.
"""

from __future__ import annotations

import gc
import hashlib
import os
import pickle
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from .model import Plan

_VERSION = "14"  # bump when the plan's shape or rules change


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


def cached_plan(cache_dir: Path | None, key_parts: tuple, build: Build, env: Mapping[str, str]) -> Plan:
    """Return the cached plan for `key_parts` if its inputs are unchanged, else `build()` and store it.

    `build` returns the plan, the files (and directories) it read and the environment variables
    it looked up with their values; `env` is the environment to check those against now.
    """
    if cache_dir is None:
        return build()[0]
    key = hashlib.sha256(repr((_VERSION, key_parts)).encode()).hexdigest()[:24]
    path = cache_dir / f"plan-{key}.pickle"
    try:
        with path.open("rb") as fh:
            inputs, variables, plan = pickle.load(fh)
        if all(_stat(p) == (p, m, s) for p, m, s in inputs) and all(env.get(k) == v for k, v in variables.items()):
            return plan
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError):
        pass  # missing or stale: rebuild
    plan, files, variables = build()
    inputs = [_stat(f) for f in files]
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=cache_dir, delete=False, suffix=".tmp") as tmp:
            pickle.dump((inputs, variables, plan), tmp, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp.name, path)  # atomic: a concurrent parse sees the old or the new entry
    except OSError:
        pass  # a read-only deployment simply does not cache
    return plan
