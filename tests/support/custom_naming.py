"""A user's Translator subclass, as a deployment would ship it (tests/test_translator.py names it
in an orchestration config by dotted path)."""

from orchestrator.plan.translator import Translator


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
