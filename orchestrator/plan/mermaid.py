"""The plan as a Mermaid flowchart: tick -> Meltano sources -> dbt tag DAGs."""

from __future__ import annotations

from collections import defaultdict

from .model import Plan

_SHAPES = {"tick": ("((", "))"), "meltano": ("[/", "/]"), "dbt": ("[", "]"), "meltano_state": ("[[", "]]")}


def _node(dag_id: str) -> str:
    return "n_" + "".join(c if c.isalnum() else "_" for c in dag_id)


def mermaid(plan: Plan, max_labels: int = 3) -> str:
    producer = {a: d.dag_id for d in plan.dags for a in d.outlets}
    lines = ["flowchart LR"]
    for d in plan.dags:
        if d.kind in ("meltano_state", "alerting"):
            continue  # manual / housekeeping, wired to no Asset
        left, right = _SHAPES[d.kind]
        lines.append(f'    {_node(d.dag_id)}{left}"{d.dag_id}"{right}')
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for d in plan.dags:
        for asset in d.schedule.assets:
            if asset in producer:
                edges[(producer[asset], d.dag_id)].append(asset)
    for (src, dst), assets in sorted(edges.items()):
        shown = assets[:max_labels] + ([f"+{len(assets) - max_labels} more"] if len(assets) > max_labels else [])
        lines.append(f'    {_node(src)} -- "{"<br/>".join(shown)}" --> {_node(dst)}')
    for d in plan.dags:
        if d.schedule.cron and d.kind != "tick":
            lines.append(f"    %% {d.dag_id} keeps its own schedule: {d.schedule.cron}")
    return "\n".join(lines)
