"""Read dbt's `manifest.json` (plain or .gz): the nodes the plan needs, nothing else.

msgspec decodes straight into typed structs and skips every field not declared
here (raw SQL, columns, docs, macros), which is most of a manifest's bytes: a
5,000-model manifest decodes in a fraction of the time `json.load` takes.
"""

from __future__ import annotations

import gzip
import io
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, TypeAlias, Union, cast

import msgspec

from .. import settings
from ..config import ConfigError

# Manifest schema versions whose fields the plan reads (v4 = dbt 1.0 ... v12 = dbt 1.8+).
OLDEST_VERSION, NEWEST_KNOWN_VERSION = 4, 12
BUILDABLE = ("model", "seed", "snapshot")  # nodes that build a warehouse relation


class ManifestError(ConfigError):
    """The manifest cannot be used; the message names the file and the problem."""


# gc=False: tens of thousands of these, none in a reference cycle, kept out of the collector's passes.
class _DependsOn(msgspec.Struct, gc=False):
    nodes: tuple[str, ...] = ()


class _Config(msgspec.Struct, gc=False):
    materialized: str | None = None
    meta: dict | None = None


# A node's `fqn` is read only when its name is shared (a selector): kept as the raw JSON, it costs
# ~5 ms of the decode at 10,000 models, against ~18 ms as a tuple of strings.
NO_FQN = msgspec.Raw(b"[]")


class _Node(msgspec.Struct, gc=False):
    """Only the fields the plan reads: msgspec skips the others (SQL, columns, checksums) unparsed.
    Not `unique_id`: the key of `nodes` is it (one string fewer per node to make and free)."""

    resource_type: str
    name: str
    database: str | None = None
    schema: str | None = None
    alias: str | None = None
    tags: tuple[str, ...] = ()
    meta: dict | None = None
    config: _Config | None = None
    depends_on: _DependsOn | None = None
    original_file_path: str = ""
    description: str | None = None
    fqn: msgspec.Raw = NO_FQN  # kept undecoded (_qualify_shared_names)


class _Kind(msgspec.Struct, tag_field="resource_type", gc=False):
    """A node of the fast decode (_KindsManifest): msgspec picks the class by `resource_type`, so a
    test, most of a manifest's nodes, skips the fields only a built node needs. `resource_type` is
    the class's: the loop of parse_manifest reads these and _Node alike."""

    resource_type: ClassVar[str]
    name: str
    tags: tuple[str, ...] = ()
    depends_on: _DependsOn | None = None
    original_file_path: str = ""
    fqn: msgspec.Raw = NO_FQN


class _Test(_Kind, tag="test"):
    """A test: no relation and no config of its own is read (its materialization is `test`; its
    owners are those of the nodes it tests: dbt_specs.py)."""

    resource_type = "test"


class _Relation(_Kind):
    database: str | None = None
    schema: str | None = None
    alias: str | None = None
    meta: dict | None = None
    config: _Config | None = None
    description: str | None = None


# One class per resource type dbt writes in `nodes` besides tests (msgspec picks it by the tag).
_BUILT_KINDS = ("model", "seed", "snapshot", "analysis", "operation", "sql_operation")
if TYPE_CHECKING:
    _NodeKind: TypeAlias = _Test | _Relation
else:
    _NodeKind = Union[  # noqa: UP007 (a union of classes made at run time)
        (
            _Test,
            *(
                msgspec.defstruct(f"_{k}", [], bases=(_Relation,), tag=k, namespace={"resource_type": k})
                for k in _BUILT_KINDS
            ),
        )
    ]


class _Source(msgspec.Struct, gc=False):
    unique_id: str
    name: str
    source_name: str = ""
    database: str | None = None
    schema: str | None = None
    identifier: str | None = None
    original_file_path: str = ""


class _Metadata(msgspec.Struct):
    dbt_schema_version: str = ""
    project_name: str | None = None


class _Manifest(msgspec.Struct):
    metadata: _Metadata
    nodes: dict[str, _Node] = {}
    sources: dict[str, _Source] = {}


class _KindsManifest(msgspec.Struct):
    """The fast decode: the resource types dbt 1.x writes in `nodes`. A manifest with another one
    (an older or a future dbt's) fails it and is decoded the plain way (_Manifest). 10% faster
    at 10,000 models: fewer fields decoded, fewer objects made and freed."""

    metadata: _Metadata
    nodes: dict[str, _NodeKind] = {}
    sources: dict[str, _Source] = {}


class Node(msgspec.Struct, frozen=True, gc=False):
    unique_id: str
    resource_type: str  # model | seed | snapshot | test
    name: str
    relation: str | None  # lower-case schema.identifier; None for ephemeral models and tests
    materialized: str | None
    tags: tuple[str, ...]
    owner: str | None  # meta.owner; None for a test (its owners are those of what it tests)
    depends_on: tuple[str, ...]
    file: str
    selector: str  # how `dbt --select` names it
    description: str = ""  # "" for a test (nothing reads it)
    database: str | None = None  # lower-case; part of the relation's identity (relations.py)
    always_build: bool = False  # meta: {orchestrator: {always_build: true}} (plan/changed.py)


class Source(msgspec.Struct, frozen=True, gc=False):
    unique_id: str
    relation: str  # lower-case schema.identifier
    file: str
    database: str | None = None  # lower-case; part of the relation's identity (relations.py)


@dataclass(frozen=True)
class DbtProject:
    path: str
    schema_version: int
    nodes: dict[str, Node]  # buildable nodes and tests, by unique_id
    sources: dict[str, Source]

    # Computed once (tens of thousands of nodes, read by several steps of the plan); tuples: shared.
    @cached_property
    def buildable(self) -> tuple[Node, ...]:
        return tuple([n for n in self.nodes.values() if n.resource_type in BUILDABLE])

    @cached_property
    def tests(self) -> tuple[Node, ...]:
        return tuple([n for n in self.nodes.values() if n.resource_type == "test"])

    @classmethod
    def read(
        cls, path: str, version: int, nodes: dict[str, Node], sources: dict[str, Source], buildable: list, tests: list
    ) -> DbtProject:
        """As parse_manifest makes it: with the buildable nodes and the tests it sorted as it read
        them (two passes fewer over 36,000 nodes at 10,000 models)."""
        project = cls(path, version, nodes, sources)
        project.__dict__.update(buildable=tuple(buildable), tests=tuple(tests))  # the cached properties
        return project


def _read_bytes(path: Path) -> bytes | bytearray:
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise ManifestError(f"{path}: manifest not found (run `dbt parse` to produce it)") from exc
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read the manifest: {exc.strerror}") from exc
    if raw[:2] == b"\x1f\x8b":
        return _gunzip(raw, path, max_manifest_bytes())
    return raw


GUNZIP_CHUNK = 1 << 20  # decompress 1 MiB at a time: the size cap is checked as it grows

# A manifest's plausible size, when $ORCHESTRATOR_MANIFEST_MAX_BYTES does not set one. Real manifests
# compress 9-15x (those in tests/data/manifests); a gzip bomb about 1,000x. A 10,000-model manifest
# is 144 MB (bench/parse_cost.py). So: at most PLAUSIBLE_RATIO times the .gz, at least
# PLAUSIBLE_FLOOR, never more than PLAUSIBLE_MAX. A 2 MB bomb is refused at 100 MB, not read to 2 GiB.
PLAUSIBLE_RATIO = 50
PLAUSIBLE_FLOOR = 64 << 20
PLAUSIBLE_MAX = 512 << 20


def max_manifest_bytes() -> int | None:
    """The most a gzipped manifest may expand to: $ORCHESTRATOR_MANIFEST_MAX_BYTES; None when unset
    (the plausible bound, which depends on the .gz's size)."""
    value = settings.MANIFEST_MAX_BYTES.get().strip()
    if not value:
        return None
    if not value.isdigit() or int(value) == 0:
        raise ManifestError(f"{settings.MANIFEST_MAX_BYTES.name}={value!r}: expected a positive whole number of bytes")
    return int(value)


def plausible_bytes(compressed: int) -> int:
    return min(PLAUSIBLE_MAX, max(PLAUSIBLE_FLOOR, PLAUSIBLE_RATIO * compressed))


def _gunzip(raw: bytes, path: Path, limit: int | None) -> bytearray:
    """Decompress in chunks, refusing to expand beyond `limit` bytes, or beyond a manifest's
    plausible size (a small .gz can expand without bound: a gzip bomb would exhaust the memory of
    every DAG-file parse). The bytearray is decoded as it is: no second copy."""
    setting = settings.MANIFEST_MAX_BYTES.name
    if limit is None:
        limit = plausible_bytes(len(raw))
        why = (
            f"more than a dbt manifest plausibly is ({PLAUSIBLE_RATIO}x its {len(raw):,} compressed bytes, "
            f"at least {PLAUSIBLE_FLOOR >> 20} MiB, at most {PLAUSIBLE_MAX >> 20} MiB): refused as a gzip bomb "
            f"(set {setting} to its real size if it is a manifest)"
        )
    else:
        why = f"refused (raise {setting} if the manifest really is that large)"
    out = bytearray()
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as stream:
            while chunk := stream.read(min(GUNZIP_CHUNK, limit + 1 - len(out))):
                out += chunk
                if len(out) > limit:
                    raise ManifestError(f"{path}: expands to more than {limit:,} bytes when decompressed: {why}")
    except (OSError, EOFError) as exc:
        raise ManifestError(f"{path}: not a readable gzip file ({exc})") from exc
    return out


def _version(path: Path, url: str) -> int:
    match = re.search(r"/manifest/v(\d+)\.json$", url)
    if not match:
        raise ManifestError(f"{path}: not a dbt manifest (metadata.dbt_schema_version is {url!r})")
    version = int(match.group(1))
    if version < OLDEST_VERSION:
        raise ManifestError(
            f"{path}: manifest schema v{version} is too old: v{OLDEST_VERSION} (dbt 1.0) "
            f"or newer is needed; re-run `dbt parse` with a current dbt"
        )
    return version


def _relation(schema: str | None, identifier: str | None) -> str | None:
    if not schema or not identifier:
        return None
    return f"{schema}.{identifier}".lower()


def load_manifest(path: str | Path) -> DbtProject:
    path = Path(path)
    return parse_manifest(_read_bytes(path), path)


def parse_manifest(raw: bytes | bytearray, path: str | Path = "manifest.json") -> DbtProject:
    """A manifest's bytes (JSON) as a DbtProject; `path` names it in errors."""
    path = Path(path)
    try:
        try:
            manifest: _Manifest | _KindsManifest = msgspec.json.decode(raw, type=_KindsManifest)
        except msgspec.ValidationError:  # a resource type it does not know, or a value of the wrong type
            manifest = msgspec.json.decode(raw, type=_Manifest)  # names the problem, if there is one
    except msgspec.DecodeError as exc:
        problem = (
            "truncated or not valid JSON"
            if "malformed" in str(exc).lower() or "truncated" in str(exc).lower()
            else "does not look like a dbt manifest"
        )
        raise ManifestError(f"{path}: {problem}: {exc}") from exc
    version = _version(path, manifest.metadata.dbt_schema_version)

    nodes: dict[str, Node] = {}
    buildable: list[Node] = []
    tests: list[Node] = []
    names: set[str] = set()
    no_config, no_depends = _Config(), _DependsOn()
    # One Node per kept node (36,000 at 10,000 models, most of them tests): a test, which has no
    # relation and is the most common node, takes the shortest path.
    for uid, n in manifest.nodes.items():
        kind = n.resource_type
        if kind == "test":  # most nodes: no relation, and no owner or opt-out of its own is read
            name = n.name
            nodes[uid] = node = Node(
                uid,
                kind,
                name,
                None,
                "test",
                n.tags,
                None,
                (n.depends_on or no_depends).nodes,
                n.original_file_path,
                name,  # a bare name selects a node unless another package has one of the same name (below)
            )
            tests.append(node)
            names.add(name)
            continue
        if kind not in BUILDABLE:
            continue
        b = cast(_Relation | _Node, n)  # not a test: it has a built node's fields
        config = b.config or no_config
        meta, config_meta, materialized = b.meta, config.meta, config.materialized
        owner = always = None
        if meta or config_meta:
            owner = (meta and meta.get("owner")) or (config_meta and config_meta.get("owner"))
            always = _always_build(meta) or _always_build(config_meta)
        relation = database = None
        if materialized != "ephemeral":
            relation = _relation(b.schema, b.alias or b.name)
            if relation and b.database:
                database = b.database.lower()
        name = b.name
        nodes[uid] = node = Node(
            uid,
            kind,
            name,
            relation,
            materialized,
            b.tags,
            str(owner) if owner else None,
            (b.depends_on or no_depends).nodes,
            b.original_file_path,
            name,
            b.description or "",
            database,
            bool(always),
        )
        buildable.append(node)
        names.add(name)
    if len(names) < len(nodes):  # a shared name: those nodes are selected by their fqn
        _qualify_shared_names(nodes, manifest.nodes)
        buildable = [n for n in nodes.values() if n.resource_type != "test"]
        tests = [n for n in nodes.values() if n.resource_type == "test"]
    sources = {}
    for s in manifest.sources.values():
        relation = _relation(s.schema, s.identifier or s.name)
        if relation:
            sources[s.unique_id] = Source(
                unique_id=s.unique_id,
                relation=relation,
                file=s.original_file_path,
                database=s.database.lower() if s.database else None,
            )
    return DbtProject.read(str(path), version, nodes, sources, buildable, tests)


def _qualify_shared_names(nodes: dict[str, Node], decoded: Mapping[str, _Node | _Kind]) -> None:
    """A name two nodes share (a model of the same name in two packages, a custom generic test
    applied twice) selects both: those nodes are selected by their fqn (`package.path.name`),
    decoded for them alone."""
    shared = {name for name, count in Counter(n.name for n in nodes.values()).items() if count > 1}
    for uid, node in nodes.items():
        if node.name in shared and (fqn := msgspec.json.decode(decoded[uid].fqn, type=tuple[str, ...])):
            nodes[uid] = msgspec.structs.replace(node, selector=".".join(fqn))


def _always_build(meta: dict | None) -> bool:
    """`meta: {orchestrator: {always_build: true}}`: built on every run, new rows or not (plan/changed.py)."""
    if not meta:
        return False
    own = meta.get("orchestrator")
    return isinstance(own, dict) and own.get("always_build") is True
