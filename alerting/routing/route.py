"""A route: which alerts it takes (`match`: globs on the dbt tag, DAG tags and DAG id) and where
they go (a Slack channel, e-mail addresses)."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

from ..events import Alert


@dataclass
class Route:
    name: str
    slack_channel: str | None = None
    emails: list[str] = field(default_factory=list)
    email_mode: str = "fallback"  # fallback | always
    match: dict[str, list[str]] = field(default_factory=dict)

    def matches(self, alert: Alert) -> bool:
        if not self.match:
            return False
        for key, patterns in self.match.items():
            if key == "dbt_tag":  # the dbt context's tag, or a DAG tag `dbt_tag:<tag>` (DAG-level alerts)
                values = [alert.dbt.tag] if alert.dbt and alert.dbt.tag else []
                values += [t.split(":", 1)[1] for t in alert.dag_tags if t.startswith("dbt_tag:")]
            elif key == "dag_tag":
                values = list(alert.dag_tags)
            elif key == "dag_id":
                values = [alert.dag_id]
            else:
                raise ValueError(f"route {self.name}: unknown match key {key!r}")
            if not any(fnmatch.fnmatchcase(v, p) for v in values for p in patterns):
                return False
        return True
