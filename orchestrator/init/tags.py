"""Which dbt tags become DAGs: the tags that partition the models into domains.

Each tag of the manifest gets a verdict, and the reason printed with it is a fact that
tests/test_init_tags.py checks against the manifest and the plan:

1. Not a domain, by what it is on or what it is called: a tag on every node (it splits nothing),
   a label whose name marks a cadence, a layer, a lifecycle stage, a data classification... (it
   cuts across domains), a tag on a single node, a tag on the very same nodes as another (a synonym).
2. Not a domain, by how it lies on the others: a tag that lies across two tags sharing no node,
   carrying part of each (`pii` on a few finance and a few marketing models).
3. Of the rest, the set on which the most nodes carry exactly one tag (many models, little
   overlap; lineage-connected tags first among equals: orchestrator/init/tag_shapes.py).
4. Each of that set, most frequent first (the precedence for a node with several), is tried on the
   real plan (the same code `orchestrator check` runs): kept if it builds a DAG of its own and adds
   no error, at most MAX_TAGS. A tag left out because it overlaps the kept ones says by how much.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ..config import OrchestrationConfig
from ..plan.build import assemble
from ..plan.manifest import DbtProject
from ..plan.meltano_project import MeltanoProject
from ..plan.model import Plan
from ..plan.translator import load_translator
from .tag_shapes import (
    MIN_NODES,
    Shapes,
    cuts_across,
    exactly_once,
    label_examples,
    label_kind,
    popcount,
    search,
    shapes_of,
)

MAX_TAGS = 8
MAX_TRIES = 30  # plans tried at most (a try is a whole plan: about 0.1 s per 1,000 models)
KINDS = ("tick", "meltano", "meltano_state", "dbt")

# Verdicts, and what their facts hold (tests/test_init_tags.py checks each against the inputs):
KEPT = "kept"
EVERYWHERE = "everywhere"  # {}
LABEL = "label"  # {"kind": label kind}
FEW = "few"  # {}
SYNONYM = "synonym"  # {"same_as": tag}
ACROSS = "across"  # {"a": tag, "b": tag}
OVERLAP = "overlap"  # {"with": (kept tags...), "shared": {kept tag: nodes}, "once_without": n, "once_with": n}
ERROR = "error"  # {"tags": the tried tags, "error": the first new error}
NO_DAG = "no_dag"  # {"tags": the tried tags, "built_by": {dag_id: nodes}}
MAX = "max_tags"  # {}
NOT_TRIED = "not_tried"  # {}


@dataclass(frozen=True)
class Try:
    tags: tuple[str, ...]
    dbt_dags: int
    errors: tuple[str, ...]
    kept: bool
    why: str = ""  # why it was left out


@dataclass(frozen=True)
class Verdict:
    tag: str
    nodes: int
    verdict: str  # KEPT or why it was left out (the constants above)
    why: str = ""  # the reason as printed
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def kept(self) -> bool:
        return self.verdict == KEPT

    @property
    def note(self) -> str:
        """The reason in a few words, for the config's comment."""
        f = self.facts
        notes = {
            EVERYWHERE: "on every node",
            LABEL: f"{f.get('kind')} label",
            FEW: "one node",
            SYNONYM: f"same nodes as {f.get('same_as')}",
            ACROSS: f"across {f.get('a')} and {f.get('b')}",
            OVERLAP: "overlaps " + ", ".join(f.get("shared") or ()),
            ERROR: "a plan error",
            NO_DAG: "no DAG of its own",
            MAX: f"over {MAX_TAGS}",
            NOT_TRIED: "not tried",
        }
        return notes.get(self.verdict, "")


@dataclass
class TagChoice:
    counts: list[tuple[str, int]] = field(default_factory=list)  # every tag on a built node, most frequent first
    chosen: tuple[str, ...] = ()
    tries: list[Try] = field(default_factory=list)
    verdicts: dict[str, Verdict] = field(default_factory=dict)  # tag -> its verdict (proposals only)
    given: bool = False

    @property
    def skipped(self) -> dict[str, str]:
        """Tag -> why it was left out (every tag not chosen)."""
        return {t: v.why for t, v in self.verdicts.items() if not v.kept}

    def others(self) -> list[tuple[str, int, str]]:
        """The tags not chosen: (tag, nodes, why in a few words; "" for tags given with --tags)."""
        return [(t, n, v.note if (v := self.verdicts.get(t)) else "") for t, n in self.counts if t not in self.chosen]


def tag_counts(dbt: DbtProject) -> list[tuple[str, int]]:
    """Tags of the nodes a DAG builds (models, seeds, snapshots; not ephemeral models, not tests)."""
    counts: Counter = Counter()
    for node in dbt.buildable:
        if node.relation:
            counts.update(set(node.tags))
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def evaluate(
    config: OrchestrationConfig, meltano: MeltanoProject, dbt: DbtProject, tags: tuple[str, ...], strict: bool = False
) -> Plan:
    """The plan with these tags. `strict`: a cycle the tags force is an error rather than split into
    stages, so that init proposes only tags that make one DAG each."""
    config = config.with_overrides(tags=tags)
    if strict:
        resolved = config._resolved
        config = config.model_copy(update={"dbt": config.dbt.model_copy(update={"on_forced_cycle": "error"})})
        config._resolved = resolved
    return assemble(
        config, kinds=KINDS, meltano=meltano, dbt=dbt, names=load_translator(config), env=config.profile.environment()
    )


def built_by(plan: Plan, shapes: Shapes, tag: str) -> dict[str, int]:
    """dag_id -> how many of the tag's nodes that DAG builds, in this plan."""
    mine = set(shapes.names(shapes.tags[tag].bits))
    out = {d.dag_id: len(mine & set(d.models)) for d in plan.dbt_dags()}
    return {d: n for d, n in sorted(out.items(), key=lambda kv: (-kv[1], kv[0])) if n}


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _by_name(shapes: Shapes, tags: list[str], built: int) -> tuple[dict[str, Verdict], list[str]]:
    """Step 1: verdicts on what a tag is on or called; the tags that remain, most frequent first."""
    verdicts: dict[str, Verdict] = {}
    remaining: list[str] = []
    for tag in tags:
        n = shapes.tags[tag].nodes
        if n == built and built > 1:
            verdicts[tag] = Verdict(tag, n, EVERYWHERE, "on every node: it would split nothing")
        elif kind := label_kind(tag):
            why = f"its name marks a {kind} label (like {label_examples(kind)}), not a domain"
            verdicts[tag] = Verdict(tag, n, LABEL, why, {"kind": kind})
        elif n < MIN_NODES:
            verdicts[tag] = Verdict(tag, n, FEW, f"on {_plural(n, 'node')} only: too few for a domain's DAG")
        else:
            remaining.append(tag)
    first: dict[int, str] = {}
    out = []
    for tag in sorted(remaining, key=lambda t: (-shapes.tags[t].nodes, t)):
        bits = shapes.tags[tag].bits
        if bits in first:
            same = first[bits]
            verdicts[tag] = Verdict(
                tag, shapes.tags[tag].nodes, SYNONYM, f"on the very same nodes as {same}", {"same_as": same}
            )
        else:
            first[bits] = tag
            out.append(tag)
    return verdicts, out


def _across(shapes: Shapes, candidates: list[str]) -> dict[str, Verdict]:
    """Step 2: tags lying across two others that share no node, where those two lie across nothing
    (when every tag lies across others, as domains and cadences can, none is left out here)."""
    pairs = {t: cuts_across(shapes, t, candidates) for t in candidates}
    clean = [t for t in candidates if pairs[t] is None]
    verdicts = {}
    for tag in candidates:
        if pairs[tag] is None or not (pair := cuts_across(shapes, tag, clean)):
            continue
        a, b = pair
        t = shapes.tags[tag].bits
        parts = [f"{popcount(t & shapes.tags[x].bits)} of the {shapes.tags[x].nodes} nodes of {x}" for x in (a, b)]
        why = f"lies across {a} and {b}, tags that share no node: it is on {parts[0]} and {parts[1]}"
        verdicts[tag] = Verdict(tag, shapes.tags[tag].nodes, ACROSS, why, {"a": a, "b": b})
    return verdicts


def overlap_verdict(shapes: Shapes, tag: str, kept: tuple[str, ...]) -> Verdict:
    """A tag the search left out: how its nodes overlap the kept tags'."""
    t = shapes.tags[tag].bits
    shared = {k: popcount(t & shapes.tags[k].bits) for k in kept if t & shapes.tags[k].bits}
    carried = popcount(t & _union(shapes, kept))
    without = exactly_once(shapes.tags[k].bits for k in kept)
    with_it = exactly_once(shapes.tags[k].bits for k in (*kept, tag))
    listed = ", ".join(f"{k} ({n})" for k, n in shared.items())
    why = (
        f"{carried} of its {shapes.tags[tag].nodes} nodes carry a kept tag ({listed}): with it, "
        f"{with_it} nodes would carry exactly one kept tag instead of {without}"
    )
    facts = {"with": kept, "shared": shared, "once_without": without, "once_with": with_it}
    return Verdict(tag, shapes.tags[tag].nodes, OVERLAP, why, facts)


def _union(shapes: Shapes, tags) -> int:
    out = 0
    for t in tags:
        out |= shapes.tags[t].bits
    return out


class _Trial:
    """Step 4: tags tried on the real plan, one at a time."""

    def __init__(self, config: OrchestrationConfig, meltano: MeltanoProject, dbt: DbtProject, shapes: Shapes):
        self.config, self.meltano, self.dbt, self.shapes = config, meltano, dbt, shapes
        self.baseline = len(evaluate(config, meltano, dbt, (), strict=True).errors)
        self.kept: tuple[str, ...] = ()
        self.tries: list[Try] = []

    def attempt(self, tag: str) -> Verdict:
        n = self.shapes.tags[tag].nodes
        if len(self.kept) >= MAX_TAGS:
            return Verdict(tag, n, MAX, f"{MAX_TAGS} tags kept already (at most {MAX_TAGS} are proposed)")
        if len(self.tries) >= MAX_TRIES:
            return Verdict(tag, n, NOT_TRIED, f"not tried: {MAX_TRIES} plans tried already")
        tags = (*self.kept, tag)
        plan = evaluate(self.config, self.meltano, self.dbt, tags, strict=True)
        errors = tuple(str(e) for e in plan.errors)
        if len(errors) > self.baseline:
            why = f"with it the plan has {len(errors) - self.baseline} more error(s): {errors[-1]}"
            verdict = Verdict(tag, n, ERROR, why, {"tags": tags, "error": errors[-1]})
        elif not any(d.tag == tag for d in plan.dbt_dags()):
            by = built_by(plan, self.shapes, tag)
            why = "no DAG of its own: its nodes are built by " + ", ".join(f"{d} ({k})" for d, k in by.items())
            verdict = Verdict(tag, n, NO_DAG, why, {"tags": tags, "built_by": by})
        else:
            verdict = Verdict(tag, n, KEPT)
            self.kept = tags
        self.tries.append(Try(tags, len(plan.dbt_dags()), errors, verdict.kept, verdict.why))
        return verdict


def choose_tags(
    config: OrchestrationConfig, meltano: MeltanoProject, dbt: DbtProject, given: tuple[str, ...] | None
) -> TagChoice:
    choice = TagChoice(counts=tag_counts(dbt))
    if given is not None:
        plan = evaluate(config, meltano, dbt, given)
        errors = tuple(str(e) for e in plan.errors)
        choice.tries.append(Try(given, len(plan.dbt_dags()), errors, kept=True))
        choice.chosen, choice.given = given, True
        return choice
    shapes = shapes_of(dbt)
    built = len(shapes.ids)
    verdicts, candidates = _by_name(shapes, [t for t, _ in choice.counts], built)
    across = _across(shapes, candidates)
    verdicts.update(across)
    candidates = [t for t in candidates if t not in across]
    trial = _Trial(config, meltano, dbt, shapes)
    # Step 3, then 4; a tag the plan refuses leaves room: search again around those kept.
    while True:
        proposed = search(shapes, [c for c in candidates if c not in verdicts], trial.kept)
        fresh = sorted((t for t in proposed if t not in trial.kept), key=lambda t: (-shapes.tags[t].nodes, t))
        if not fresh:
            break
        for tag in fresh:
            verdicts[tag] = trial.attempt(tag)
    for tag in candidates:
        if tag not in verdicts:
            verdicts[tag] = overlap_verdict(shapes, tag, trial.kept)
    choice.chosen, choice.tries = trial.kept, trial.tries
    if not choice.tries:
        plan = evaluate(config, meltano, dbt, ())
        choice.tries.append(Try((), len(plan.dbt_dags()), tuple(str(e) for e in plan.errors), kept=True))
    choice.verdicts = {t: verdicts[t] for t, _ in choice.counts}
    return choice
