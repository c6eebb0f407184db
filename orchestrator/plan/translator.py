"""The one extension point for names, and the one place where they are made: how dbt nodes and
Meltano tables become Assets, how tags become DAG ids, every DAG, task and Asset id of the cycle,
how Meltano state IDs are formed. The plan, the Airflow renderer, the local launcher and the
Meltano state operations all ask this class (the configured subclass: load_translator), so a
subclass changes a name everywhere at once.

    # orchestration.yml
    translator: my_company.airflow_naming.Naming

    # my_company/airflow_naming.py (importable where Airflow parses the DAG files)
    from orchestrator.plan.translator import Translator

    class Naming(Translator):
        def asset_name(self, relation: str, database: str | None = None) -> str:
            return f"lake.{relation}"                # every Asset under one prefix

Modelled on dagster-dbt's DagsterDbtTranslator: small documented methods, each one decision.
Every method must be a pure function of its arguments (it runs at every DAG-file parse).
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

from ..config import ConfigError, OrchestrationConfig
from .manifest import Node
from .relations import default_stream_table, qualified, uri_database, with_database

# What each task of the generated DAGs does (its default id is the role itself); the tasks of
# per-model dbt DAGs are named by model_task_id instead.
TaskRole = Literal[
    "emit_tick",  # the tick DAG's task: emits the tick Asset
    "meltano_run",  # a Meltano DAG's task: `meltano run ...`
    "dbt_build",  # a dbt DAG's one task (dbt.task_granularity: dag)
    "dbt_test_relationships",  # per-model dbt DAGs: the tests across models, after every model
    "dbt_test",  # a tests-only dbt DAG's task
    "wait_for_cycle",  # the first task of a per-model dbt DAG: waits until its inputs belong to one cycle
    "meltano_state",  # the Meltano State DAG's task
    "redeliver",  # the alerting DAG: send what the outbox holds
    "check_lateness",  # the alerting DAG: alert about dbt DAGs not run in time
]
_NON_ID = re.compile(r"[^a-z0-9_]+")
# Plugin and environment names: no whitespace, no shell or path syntax. The extractor part is
# greedy, so the split is at the last "-to-"; the optional suffix follows a colon.
_STATE_ID = re.compile(
    r"(?P<environment>[A-Za-z0-9_.-]+):(?P<extractor>[A-Za-z0-9_.-]+)-to-(?P<loader>[A-Za-z0-9_.-]+)"
    r"(?::(?P<suffix>[A-Za-z0-9_.-]+))?"
)


def slug(name: str) -> str:
    """Lower-case letters, digits and `_`: what a DAG or task id is built from."""
    return _NON_ID.sub("_", name.lower()).strip("_") or "_"


@dataclass(frozen=True)
class StateId:
    environment: str
    extractor: str
    loader: str
    suffix: str | None = None


class Translator:
    """Default naming. `config` is the orchestration config (OrchestrationConfig); the Meltano
    state ID methods do without one."""

    def __init__(self, config: OrchestrationConfig | None = None):
        self._config = config

    @property
    def config(self) -> OrchestrationConfig:
        if self._config is None:
            raise TypeError("this Translator was made without an orchestration config")
        return self._config

    # ---------------------------------------------------------------- Assets

    def asset_name(self, relation: str, database: str | None = None) -> str:
        """The Asset of a warehouse relation `schema.table` (lower-case). Used alike for what a
        Meltano extractor loads, what a dbt source reads and what a dbt node builds: the
        equality of these names is what wires ingestion to transformation. `database` is given
        only where the plan holds this schema.table in several databases and this one is not the
        database Meltano loads into (relations.py): then `database.schema.table`."""
        return qualified(database, relation)

    def asset_uri(self, name: str, relation: str | None, database: str | None = None) -> str:
        """`<warehouse_uri>/<schema>/<table>` (the profile's `warehouse_uri`); `name` when there is
        none. A relation in another `database` than the URI's: that database in its place."""
        base = self._warehouse_base()
        if not base or relation is None:
            return name
        if database and database != uri_database(base):
            base = with_database(base, database).rstrip("/")
        schema, _, table = relation.partition(".")
        return f"{base}/{schema}/{table}"

    def _warehouse_base(self) -> str:
        """The profile's `warehouse_uri` without a trailing slash, read once: asked for every dbt
        node, and the config's profile is a pydantic private attribute (slow to read)."""
        base = self.__dict__.get("_warehouse_uri_base")
        if base is None:
            base = self.__dict__["_warehouse_uri_base"] = self.config.profile.warehouse_uri.rstrip("/")
        return base

    def asset_group(self, relation: str | None) -> str:
        """The group the Assets view folds it into: the warehouse schema (raw_shop, staging, analytics)."""
        return relation.partition(".")[0] if relation else "orchestration"

    def dbt_asset_extra(self, node: Node, dag_id: str, tag: str | None) -> dict[str, Any]:
        """What the Assets view shows of a dbt node. Every key is always there (null when the node
        has none), so the view's `extra` column reads alike for every dbt Asset: `unique_id`,
        `materialized`, `resource_type`, `dag_id`, `tag` (the orchestration tag of its DAG; null
        in a catch-all or monolith DAG), `owner` (`meta.owner`), `description` (its first line)."""
        text = node.description.strip()
        description = text.splitlines()[0].strip() if text else None
        if description and len(description) > 200:
            description = description[:199] + "…"
        return {
            "unique_id": node.unique_id,
            "materialized": node.materialized,
            "resource_type": node.resource_type,
            "dag_id": dag_id,
            "tag": tag,
            "owner": self.owner(node),
            "description": description,
        }

    def meltano_asset_extra(self, extractor: str, stream: str, state_id: str) -> dict[str, Any]:
        """What the Assets view shows of a table Meltano loads."""
        return {"extractor": extractor, "stream": stream, "state_id": state_id}

    def asset_link(self, name: str) -> str:
        """Where a DAG's docs link an Asset it waits for or emits: Airflow's Assets view filtered
        on its name (the UI's own `name_pattern` search; an Asset's page is keyed by a database id
        the plan cannot know). Override for a UI served under a path prefix."""
        return "/assets?name_pattern=" + quote(name, safe="")

    def owner(self, node: Node) -> str | None:
        """Who owns a dbt node: `meta.owner` (alerts mention them)."""
        return node.owner

    # ---------------------------------------------------------------- the cycle's own DAGs and Asset

    def tick_asset(self) -> str:
        """The Asset whose event starts every cycle (`tick.asset`)."""
        return self.config.tick.asset

    def tick_dag_id(self) -> str:
        """The cron DAG that emits the tick Asset (`tick.dag_id`)."""
        return self.config.tick.dag_id

    def state_dag_id(self) -> str:
        """The Meltano State DAG (`meltano.state_dag_id`)."""
        return self.config.meltano.state_dag_id

    def alerting_dag_id(self) -> str:
        """The alerting housekeeping DAG (`alerting.dag_id`)."""
        return self.config.alerting.dag_id

    # ---------------------------------------------------------------- DAG and task ids

    def tag_dag_id(self, tag: str) -> str:
        """The DAG of an orchestration tag: the prefix, then the tag (less `tag_prefix`), slugged."""
        config = self.config
        if config.dbt.tag_prefix and tag.startswith(config.dbt.tag_prefix):
            tag = tag[len(config.dbt.tag_prefix) :]
        return config.dbt.dag_id_prefix + slug(tag)

    def tag_stage_dag_id(self, tag: str, stage: int) -> str:
        """A stage (1, 2, ...) of a tag split by a forced cycle: `dbt_finance`, `dbt_finance_2`, ..."""
        base = self.tag_dag_id(tag)
        return base if stage == 1 else f"{base}_{stage}"

    def monolith_dag_id(self) -> str:
        """The one dbt DAG of `dbt.mode: monolith` (`dbt.monolith_dag_id`)."""
        return self.config.dbt.monolith_dag_id

    def catch_all_dag_id(self, stage: int) -> str:
        """The catch-all DAG of a stage (1, 2, ...): `dbt_untagged`, `dbt_untagged_2`, ..."""
        base = self.config.dbt.catch_all.dag_id
        return base if stage == 1 else f"{base}_{stage}"

    def tests_dag_id(self, parent_dags: tuple[str, ...]) -> str:
        """A tests-only DAG, for tests across DAGs that nothing runs after."""
        prefix = self.config.dbt.dag_id_prefix
        names = [d[len(prefix) :] if d.startswith(prefix) else d for d in parent_dags]
        return f"{prefix}tests_{'_and_'.join(names)}"

    def meltano_dag_id(self, run_name: str) -> str:
        """The DAG of an extractor or a Meltano schedule."""
        return self.config.meltano.dag_id_prefix + slug(run_name)

    def model_task_id(self, node: Node) -> str:
        """Per-model mode: the task that builds one node."""
        return slug(node.name)

    def task_id(self, role: TaskRole) -> str:
        """Every other task: by its role (TaskRole), which is also its default id."""
        return role

    # ---------------------------------------------------------------- Meltano

    def stream_table(self, stream: str) -> str:
        """The table a Singer stream loads: a stream ID `db-table` loads `table` (Singer loaders
        split on '-'), lower-case."""
        return default_stream_table(stream)

    def state_id(self, environment: str, extractor: str, loader: str, suffix: str | None = None) -> str:
        """Meltano's own rule: `<environment>:<extractor>-to-<loader>[:<state_id_suffix>]`."""
        return f"{environment}:{extractor}-to-{loader}" + (f":{suffix}" if suffix else "")

    def parse_state_id(self, state_id: str) -> StateId | None:
        """The parts of a state ID (None if it does not follow the rule)."""
        match = _STATE_ID.fullmatch(state_id or "")
        if not match:
            return None
        return StateId(match["environment"], match["extractor"], match["loader"], match["suffix"])


def load_translator(config: OrchestrationConfig) -> Translator:
    """The configured Translator subclass (`translator:` in orchestration.yml), else the default."""
    if not config.translator:
        return Translator(config)
    module_name, _, attr = config.translator.replace(":", ".").rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"{config.path}: translator: cannot import {config.translator!r}: {exc}") from None
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - the module's own code; SystemExit would end the parse
        what = f"SystemExit({exc.code!r})" if isinstance(exc, SystemExit) else f"{type(exc).__name__}: {exc}"
        raise ConfigError(
            f"{config.path}: translator: importing {module_name!r} raised {what}: fix the module"
        ) from None
    if not (isinstance(cls, type) and issubclass(cls, Translator)):
        raise ConfigError(
            f"{config.path}: translator: {config.translator!r} is not a subclass of "
            "orchestrator.plan.translator.Translator"
        )
    return cls(config)


def translator_file(config: OrchestrationConfig) -> str | None:
    """The source file of a configured translator (the plan cache watches it)."""
    if not config.translator:
        return None
    module_name = config.translator.replace(":", ".").rpartition(".")[0]
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        return None
    return spec.origin if spec and spec.origin else None
