"""The plan as text for `orchestrator plan`: every DAG with its whole schedule, then where each
node placed by a rule went and why."""

from __future__ import annotations

from collections import defaultdict

from .model import Plan


def plan_table(plan: Plan) -> str:
    width = max([len("DAG"), *(len(d.dag_id) for d in plan.dags)]) + 2
    lines = [f"profile: {plan.profile}", f"{'DAG':<{width}}{'kind':<15}{'outlets':>7}  schedule"]
    for d in plan.dags:
        if d.schedule.cron:
            schedule = [d.schedule.cron]
        elif d.schedule.assets:  # every Asset on a line of its own: nothing is cut off
            schedule = [d.schedule.assets[0], *(f"& {a}" for a in d.schedule.assets[1:])]
        else:
            schedule = ["manual"]
        lines.append(f"{d.dag_id:<{width}}{d.kind:<15}{len(d.outlets):>7}  {schedule[0]}")
        lines += [f"{'':<{width + 24}}{s}" for s in schedule[1:]]
    if plan.placement:
        lines += ["", placement_text(plan)]
    lines.append(f"{len(plan.warnings)} warning(s), {len(plan.errors)} error(s): `orchestrator check` lists them")
    return "\n".join(lines)


def placement_text(plan: Plan) -> str:
    """Nodes placed by a rule rather than by their one orchestration tag. Untagged nodes in the
    first catch-all stage are counted (the rule is their whole reason); `plan --json` lists them."""
    first_stage: dict[str, int] = defaultdict(int)
    lines = [f"Placed by a rule ({len(plan.placement)} nodes):"]
    for uid, p in sorted(plan.placement.items(), key=lambda kv: (kv[1]["dag_id"] or "", kv[0])):
        if p["rule"] == "catch_all" and p["reason"].endswith("catch-all stage 1"):
            first_stage[p["dag_id"]] += 1
            continue
        lines.append(f"  {uid} -> {p['dag_id'] or '(no DAG)'}: {p['reason']}")
    for dag_id, n in sorted(first_stage.items()):
        lines.append(f"  {n} node(s) with no orchestration tag -> {dag_id}: catch-all stage 1")
    return "\n".join(lines)
