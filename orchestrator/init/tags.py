"""Which dbt tags become DAGs: the manifest's tags, tried most frequent first, each kept only if
it adds a DAG (a tag whose every node has an earlier tag adds none) and the plan stays free of
errors with it, at most MAX_TAGS. Each try is the real plan (the same
code `orchestrator check` runs) on the already loaded manifest and meltano.yml."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace

from ..config import OrchestrationConfig
from ..plan.build import assemble
from ..plan.manifest import DbtProject
from ..plan.meltano_project import MeltanoProject
from ..plan.model import Plan
from ..plan.translator import load_translator

MAX_TAGS = 8
MAX_TRIES = 30  # candidates tried at most (a try is a whole plan: about 0.1 s per 1,000 models)
KINDS = ("tick", "meltano", "meltano_state", "dbt")


@dataclass(frozen=True)
class Try:
    tags: tuple[str, ...]
    dbt_dags: int
    errors: tuple[str, ...]
    kept: bool
    why: str = ""  # why it was left out


@dataclass
class TagChoice:
    counts: list[tuple[str, int]] = field(default_factory=list)  # every tag on a built node, most frequent first
    chosen: tuple[str, ...] = ()
    tries: list[Try] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # tag -> why it was not tried
    given: bool = False

    def others(self) -> list[tuple[str, int]]:
        return [(t, n) for t, n in self.counts if t not in self.chosen]


def tag_counts(dbt: DbtProject) -> list[tuple[str, int]]:
    """Tags of the nodes a DAG builds (models, seeds, snapshots; not ephemeral models, not tests)."""
    counts: Counter = Counter()
    for node in dbt.buildable:
        if node.relation:
            counts.update(set(node.tags))
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def evaluate(config: OrchestrationConfig, meltano: MeltanoProject, dbt: DbtProject, tags: tuple[str, ...]) -> Plan:
    config = config.with_overrides(tags=tags)
    return assemble(
        config, kinds=KINDS, meltano=meltano, dbt=dbt, names=load_translator(config), env=config.profile.environment()
    )


def _try(config: OrchestrationConfig, meltano: MeltanoProject, dbt: DbtProject, tags: tuple[str, ...]) -> Try:
    plan = evaluate(config, meltano, dbt, tags)
    return Try(tags, len(plan.of_kind("dbt")), tuple(str(e) for e in plan.errors), kept=False)


def choose_tags(
    config: OrchestrationConfig, meltano: MeltanoProject, dbt: DbtProject, given: tuple[str, ...] | None
) -> TagChoice:
    choice = TagChoice(counts=tag_counts(dbt))
    if given is not None:
        t = _try(config, meltano, dbt, given)
        choice.tries.append(replace(t, kept=True))
        choice.chosen, choice.given = given, True
        return choice
    built = sum(1 for n in dbt.buildable if n.relation)
    baseline = _try(config, meltano, dbt, ())
    chosen: tuple[str, ...] = ()
    dags = baseline.dbt_dags
    tried = 0
    for tag, n in choice.counts:
        if len(chosen) >= MAX_TAGS:
            choice.skipped[tag] = f"{MAX_TAGS} tags chosen already"
            continue
        if n == built and built > 1:
            choice.skipped[tag] = "on every node: it would split nothing"
            continue
        if tried >= MAX_TRIES:
            choice.skipped[tag] = f"not tried (at most {MAX_TRIES} tries)"
            continue
        tried += 1
        t = _try(config, meltano, dbt, (*chosen, tag))
        if len(t.errors) > len(baseline.errors):
            why = f"adds {len(t.errors) - len(baseline.errors)} error(s): {t.errors[-1]}"
        elif t.dbt_dags <= dags:
            why = f"adds no DAG: every node tagged {tag} has an earlier tag"
        else:
            why = ""
        kept = not why
        choice.tries.append(replace(t, kept=kept, why=why))
        if kept:
            chosen, dags = t.tags, t.dbt_dags
    choice.chosen = chosen
    if not choice.tries:
        choice.tries.append(replace(baseline, kept=True))
    return choice
