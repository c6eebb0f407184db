"""The lineage part of an alert, for Slack and e-mail: a failure's blast radius, a recovery's late
DAGs. An alert carries them in `extra` (whoever computes them; the orchestrator does from its plan):

    extra["blast_radius"] = {"dag_id", "blocked": [dag ids], "stale_models": n, "owners": [...],
                             "missing": {dag id: [Assets]}}     # on task_failed / dag_failed
    extra["late"] = the same shape                              # on recovered: what it held back

`owners` are the blocked models' owners other than the failed DAG's own: Slack mentions them
(through alerting.yml's `owners` map), the e-mail names them. Lists are capped (LIST_MAX)
with a count of the rest; every name is escaped like the rest of the alert.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

from ..events import Alert

LIST_MAX = 20


def _radius(alert: Alert) -> tuple[str, dict[str, Any]] | None:
    key = "late" if alert.kind == "recovered" else "blast_radius"
    found = alert.extra.get(key)
    if not isinstance(found, dict) or not found.get("blocked"):
        return None
    return key, found


def _capped(items: list[str], show: Callable[[str], str]) -> str:
    shown = ", ".join(show(i) for i in items[:LIST_MAX])
    return shown + (f" and {len(items) - LIST_MAX} more" if len(items) > LIST_MAX else "")


def _models(n: int) -> str:
    return f"{n} model{'s' if n != 1 else ''}"


def lineage_lines(alert: Alert, dag: Callable[[str], str], owner: Callable[[str], str]) -> list[tuple[str, str]]:
    """(label, text) lines, with `dag` and `owner` formatting a name for the medium (escaped,
    code, mention). A failure: what will not run, how many models go stale and whom else that
    concerns; a recovery: what ran late."""
    got = _radius(alert)
    if got is None:
        return []
    key, r = got
    blocked = [str(d) for d in r.get("blocked") or []]
    owners = [str(o) for o in r.get("owners") or []]
    stale = int(r.get("stale_models") or 0)
    dags = f"{len(blocked)} downstream DAG{'s' if len(blocked) != 1 else ''}"
    if key == "late":
        return [
            ("Ran late", f"{dags} held back by the failure until this run: {_capped(blocked, dag)} ({_models(stale)})")
        ]
    lines = [("Blast radius", f"{dags} will not run this cycle: {_capped(blocked, dag)}")]
    stale_text = f"{_models(stale)} will be stale"
    if owners:
        stale_text += f"; owners besides this DAG's: {_capped(owners, owner)}"
    return [*lines, ("Stale", stale_text)]


def slack_block(
    alert: Alert, escape: Callable[[Any], str], mention: Callable[[str], str], limit: Callable[[str], str]
) -> dict[str, Any] | None:
    """One section block (None when there is nothing to say). `escape` is the mrkdwn escaper,
    `mention` an owner's mention, `limit` the section-size truncation."""
    lines = lineage_lines(alert, lambda d: f"`{escape(d)}`", mention)
    if not lines:
        return None
    text = "\n".join(f"*{label}:* {body}" for label, body in lines)
    return {"type": "section", "text": {"type": "mrkdwn", "text": limit(text)}}


def reply_suffix(alert: Alert) -> str:
    """What a recovery's thread reply adds, unescaped (the reply escapes its whole text); '' when
    nothing ran late. The recovery e-mail quotes the reply, so it says the same."""
    return "".join(f"\n{label}: {body}" for label, body in lineage_lines(alert, str, str))


def email_parts(alert: Alert, line: Callable[[Any], str]) -> tuple[list[str], str]:
    """A failure e-mail's blast radius section: text lines and HTML (([], '') when none)."""
    if alert.kind == "recovered":
        return [], ""  # in the quoted reply (reply_suffix)
    lines = lineage_lines(alert, line, line)
    if not lines:
        return [], ""
    text = [f"{label}: {body}" for label, body in lines]
    return ["", *text], "<h3>Blast radius</h3>" + "".join(f"<p>{html.escape(t)}</p>" for t in text)
