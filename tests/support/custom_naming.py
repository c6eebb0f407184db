"""A user's Translator subclass, as a deployment would ship it (tests/test_translator.py names it
in an orchestration config by dotted path)."""

import hashlib

from orchestrator.plan.translator import Translator, slug


class WarehouseNaming(Translator):
    """Assets named `lake.<schema>.<table>`, DAGs `team_<tag>`, Meltano DAGs `ingest__<extractor>`."""

    def asset_name(self, relation: str) -> str:
        return f"lake.{relation}"

    def asset_group(self, relation: str | None) -> str:
        return "lake" if relation else "orchestration"

    def tag_dag_id(self, tag: str) -> str:
        return f"team_{tag}"

    def catch_all_dag_id(self, stage: int) -> str:
        return f"team_leftovers_{stage}"

    def meltano_dag_id(self, run_name: str) -> str:
        return f"ingest__{run_name.replace('-', '_')}"


class EveryNameRenamed(Translator):
    """Every naming method overridden (tests/test_translator.py finds no default name anywhere)."""

    def asset_name(self, relation: str) -> str:
        return f"renamed.{relation}"

    def asset_group(self, relation: str | None) -> str:
        return "renamed"

    def tick_asset(self) -> str:
        return "renamed_tick"

    def tick_dag_id(self) -> str:
        return "renamed_tick_dag"

    def state_dag_id(self) -> str:
        return "renamed_state"

    def alerting_dag_id(self) -> str:
        return "renamed_alerting"

    def tag_dag_id(self, tag: str) -> str:
        return f"renamed_tag_{slug(tag)}"

    def tag_stage_dag_id(self, tag: str, stage: int) -> str:
        return f"renamed_tag_{slug(tag)}_stage_{stage}"

    def monolith_dag_id(self) -> str:
        return "renamed_everything"

    def catch_all_dag_id(self, stage: int) -> str:
        return f"renamed_rest_{stage}"

    def tests_dag_id(self, parent_dags: tuple[str, ...]) -> str:
        return "renamed_tests_" + "_".join(parent_dags)

    def meltano_dag_id(self, run_name: str) -> str:
        return f"renamed_load_{slug(run_name)}"

    def model_task_id(self, node) -> str:
        return f"renamed_{slug(node.name)}"

    def task_id(self, role) -> str:
        return f"renamed_{role}"

    def state_id(self, environment: str, extractor: str, loader: str, suffix: str | None = None) -> str:
        return super().state_id(environment, extractor, loader, suffix or "renamed")


class OpaqueAssets(Translator):
    """Asset names that keep nothing of the relation (a catalogue's ids, say)."""

    def asset_name(self, relation: str) -> str:
        return "asset-" + hashlib.sha256(relation.encode()).hexdigest()[:12]
