"""The Markdown of the DAGs' docs (Airflow's DAG docs panel): lists, and Assets as links to
Airflow's Assets view (Translator.asset_link)."""

from __future__ import annotations

from .translator import Translator


def bullets(items, limit: int = 25, item=lambda i: f"`{i}`") -> str:
    items = list(items)
    shown = [f"- {item(i)}" for i in items[:limit]]
    if len(items) > limit:
        shown.append(f"- ... and {len(items) - limit} more")
    return "\n".join(shown) or "- (none)"


def asset_bullets(names: Translator, assets, limit: int = 25) -> str:
    """A DAG doc's list of Assets, each a link to it in Airflow's Assets view."""
    return bullets(assets, limit, lambda a: f"[`{a}`]({names.asset_link(a)})")
