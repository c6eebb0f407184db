"""A warehouse relation's identity: database, schema and name.

The plan names relations `schema.table` (lower-case), which is what Asset names, groups and
Meltano's loaders speak. But on warehouses with several databases (Snowflake's RAW and PREP,
BigQuery projects, DuckDB's ATTACHed files) the same schema.table in two databases is two
relations. So wherever the plan asks "is this the same relation?", it compares the database too:
a dbt node or source carries the one its manifest gives; a Meltano table the one its loader's
configuration names, else the profile's `warehouse_uri`. A database nobody names (None) is
unknown, and an unknown database matches any: the plan cannot tell those apart, as before.

Asset names stay `schema.table` where that is unambiguous. Where the plan holds one schema.table
in several databases, the relations outside the database Meltano loads into are named by
`Translator.asset_name(relation, database)` (`database.schema.table` by default).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import PurePosixPath
from urllib.parse import urlsplit


def default_stream_table(stream: str) -> str:
    """A stream ID `db-table` loads table `table` (Singer loaders split on '-'), lower-case. (Here,
    not in meltano_project.py, so that a DAG parse, whose task modules name it, does not import
    that module's schema.)"""
    return stream.split("-")[-1].lower()


def qualified(database: str | None, relation: str) -> str:
    """`database.schema.table`, or `schema.table` when the database is unknown."""
    return f"{database}.{relation}" if database else relation


def same_database(a: str | None, b: str | None) -> bool:
    """Whether two relations of one schema.table can be the same: an unknown database matches any."""
    return a is None or b is None or a == b


@lru_cache(maxsize=64)  # asked once per dbt node, of the same few URIs: urlsplit was 10% of the plan
def uri_database(uri: str) -> str | None:
    """The database a warehouse URI names: its last path segment (`postgres://host:5432/warehouse`),
    else its host (`duckdb://warehouse`); lower-case."""
    if not uri:
        return None
    parts = urlsplit(uri)
    segment = parts.path.strip("/").rpartition("/")[2] or parts.netloc.rpartition("@")[2]
    return segment.lower() or None


@lru_cache(maxsize=256)
def with_database(uri: str, database: str) -> str:
    """The warehouse URI of another database of the same warehouse: its database part replaced."""
    parts = urlsplit(uri)
    path = parts.path.rstrip("/")
    if path.strip("/"):
        return parts._replace(path=path.rpartition("/")[0] + "/" + database).geturl()
    return parts._replace(netloc=database).geturl()


# Loader settings that name the database it writes to (Snowflake, PostgreSQL, BigQuery's project),
# and those that name a DuckDB file (whose database is the file's stem, as DuckDB and dbt-duckdb name it).
DATABASE_SETTINGS = ("database", "dbname", "project", "project_id")
FILE_SETTINGS = ("filepath", "path")


def loader_database(config: dict, expand: Callable[[str], str | None]) -> str | None:
    """The database a Meltano loader writes to, from its configuration (`${VAR}`s expanded by
    `expand`, None when one is not set); None when it names none."""
    for key in DATABASE_SETTINGS:
        value = config.get(key)
        if isinstance(value, str) and value and (db := expand(value)):
            return db.lower()
    for key in FILE_SETTINGS:
        value = config.get(key)
        if isinstance(value, str) and value and (path := expand(value)) and path != ":memory:":
            return PurePosixPath(path.replace("\\", "/")).name.split(".")[0].lower() or None
    return None


@dataclass
class Loaded:
    """What Meltano loads, by schema.table: each table's database, its Asset and its DAG."""

    home: str | None = None  # the database Meltano loads into (None: unknown)
    by_relation: dict[str, list[tuple[str | None, str, str]]] = field(default_factory=dict)

    @classmethod
    def of(cls, home: str | None, tables: Iterable[tuple[str | None, str, str, str]]) -> Loaded:
        """From (database, schema.table, Asset, DAG id) of every table Meltano loads."""
        by: dict[str, list[tuple[str | None, str, str]]] = defaultdict(list)
        for database, relation, asset, dag_id in tables:
            by[relation].append((database, asset, dag_id))
        return cls(home, dict(by))

    def find(self, database: str | None, relation: str) -> tuple[str, str] | None:
        """The (Asset, DAG id) of the loaded table that is this relation, if Meltano loads it."""
        for db, asset, dag_id in self.by_relation.get(relation, ()):
            if same_database(db, database):
                return asset, dag_id
        return None

    def elsewhere(self, database: str | None, relation: str) -> list[str | None]:
        """The other databases Meltano loads this schema.table into (a hint when it is not this one)."""
        return [db for db, _, _ in self.by_relation.get(relation, ()) if not same_database(db, database)]


def built_asset_names(
    built: dict[str, tuple[str | None, str]],
    loaded: Loaded,
    asset_name: Callable[..., str],
) -> dict[str, str]:
    """The Asset of each relation dbt builds (unique_id -> (database, schema.table)): `schema.table`,
    unless the plan holds that schema.table in another database too and this one is not the
    database Meltano loads into; then the translator's `asset_name(relation, database)`."""
    first: dict[str, str] = {}  # schema.table -> the first known database that holds it
    ambiguous: set[str] = set()  # schema.tables in several known databases
    known = [(db, rel) for rel, tables in loaded.by_relation.items() for db, _, _ in tables if db is not None]
    for database, relation in (*known, *built.values()):
        if database is not None and first.setdefault(relation, database) != database:
            ambiguous.add(relation)
    out: dict[str, str] = {}
    for uid, (database, relation) in built.items():
        if relation in ambiguous and database is not None and database != loaded.home:
            out[uid] = asset_name(relation, database)
        else:
            out[uid] = asset_name(relation)
    return out
