"""Routing: which Slack channel and which e-mail list an alert goes to.

The config (YAML file, YAML text or dict) holds names only: the Slack token, the
webhook URL and the SMTP password are read at send time from environment
variables or Airflow connections named here, and are redacted from every repr
and every log line of this package.

`RoutingConfig.load(path)` / `from_dict(d)` validate it against a strict typed schema
(routing/schema.py): an unknown key anywhere, a value of the wrong type (`quiet: 'false'`),
a zero or negative duration, a duplicate route name or a secret in the file is an error.
They raise `RoutingConfigError` (a ValueError) listing every problem at once, one line
each, naming the file and the key path; bad UTF-8 and bad YAML (including a key given
twice) name the file too. Env overrides: ALERTING_QUIET (1/0, true/false, yes/no, on/off),
ALERTING_SLACK_BASE_URL, ALERTING_SMTP_HOST, ALERTING_SMTP_PORT; an invalid value is an
error naming the variable. Owners that differ only in case and e-mail addresses that are not
a plain name@domain (a NUL, a line break, `x:Bcc:evil@y.com`) are errors too. What is valid but
probably not meant, a match pattern written as a regular expression (patterns are globs) or a
file with nowhere to send anything, is in `RoutingConfig.warnings`, one line each naming the
file and the key.

Here: `RoutingConfig`. It is made of `Route`s (route.py), the `slack:` / `email:` settings
(credentials.py), read by the one YAML loader (yaml_file.py), checked by the schema (schema.py)
and checks.py, with every message worded by messages.py.

    quiet: false                   # dev: record in the outbox, send nothing (env ALERTING_QUIET=1 too)
    suppression_window_s: 3600     # same signature within it: counted, not re-sent
    thread_replies: false          # post "seen N times" in the original's thread
    notify_budget_s: 10            # one notify() call sends for at most this long; the rest stays
                                   # pending in the outbox for redeliver()
    retention_days: 30             # redeliver() prunes sent rows and resolved incidents older than this
    storm: {threshold: 5, window_s: 600}   # more failures than this on a route within the window:
                                           # the rest go in one thread
    slack:
      token_env: SLACK_BOT_TOKEN   # or token_conn_id: slack_api_default
      webhook_env: null            # or webhook_conn_id: slack_webhook (used when no token)
      base_url: null               # e.g. a test server: http://127.0.0.1:PORT/api/ (env ALERTING_SLACK_BASE_URL)
      timeout_s: 3
      max_retry_after_s: 2         # a 429's Retry-After up to this is slept through; longer: redelivered later
    email:
      smtp_host: localhost         # env ALERTING_SMTP_HOST / ALERTING_SMTP_PORT override
      smtp_port: 25
      starttls: false
      sender: airflow@example.com
      username_env: null
      password_env: null           # or conn_id: smtp_default
      timeout_s: 5
    owners:                        # owner e-mail (dbt meta.owner) -> Slack user id
      alice@example.com: U012ALICE
    routes:                        # every matching route gets the alert; each needs a match and a
      - name: finance              # slack_channel and/or emails; names are unique ('default' is taken)
        match: {dbt_tag: finance}  # keys: dbt_tag, dag_tag, dag_id (glob); AND across keys,
        slack_channel: "#finance"  # a list is OR within a key
        emails: [finance@example.com]
        email_mode: fallback       # fallback (only when Slack fails) | always
    default:
      slack_channel: "#data-alerts"
      emails: [data@example.com]
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..events import Alert
from ..redaction import redacting_logger
from .checks import RoutingConfigError, config_warnings, duplicate_names, env_overrides, owners_differing_in_case
from .credentials import EmailSettings, SlackSettings
from .route import Route
from .yaml_file import YamlFileError, parse_yaml, read_yaml

log = redacting_logger("alerting")


_QUIET_VALUES = ("slack", "email")  # never echo values from these sections in an error


@dataclass
class RoutingConfig:
    routes: list[Route] = field(default_factory=list)
    default: Route = field(default_factory=lambda: Route(name="default"))
    quiet: bool = False
    suppression_window_s: float = 3600.0
    thread_replies: bool = False
    storm_threshold: int = 5
    storm_window_s: float = 600.0
    owners: dict[str, str] = field(default_factory=dict)
    slack: SlackSettings = field(default_factory=SlackSettings)
    email: EmailSettings = field(default_factory=EmailSettings)
    notify_budget_s: float = 10.0  # one notify() call, all routes: then the rest waits in the outbox
    retention_days: float = 30.0  # sent rows and resolved incidents older than this are pruned
    warnings: list[str] = field(default_factory=list)  # valid, but probably not meant: `file: key: what`

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None, *, source: str = "routing config") -> RoutingConfig:
        """Validate (routing/schema.py, checks.py) and build; RoutingConfigError lists every problem.
        What is valid but probably not meant (a match pattern written as a regex, nowhere to send
        anything) is in `warnings`, each line naming the file and the key, and logged."""
        from pydantic import ValidationError

        from .messages import type_name
        from .schema import RoutingFile, problems

        if d is None:
            d = {}
        if not isinstance(d, dict):
            raise RoutingConfigError(
                source, [("", f"expected a mapping of settings at the top level, got {type_name(d)}")]
            )
        errors: list[tuple[str, str]] = []
        model: RoutingFile | None = None
        try:
            model = RoutingFile.model_validate(d)
        except ValidationError as e:
            errors += problems(e, RoutingFile, quiet_values=_QUIET_VALUES)
        errors += duplicate_names(d.get("routes")) + owners_differing_in_case(d.get("owners"))
        env, env_errors = env_overrides(source)
        errors += env_errors
        if errors or model is None:
            raise RoutingConfigError(source, errors)
        config = cls._build(model, env)
        config.warnings = [
            f"{source}: {path}: {msg}" if path else f"{source}: {msg}" for path, msg in config_warnings(d, config)
        ]
        for line in config.warnings:
            log.warning("alerting: %s", line)
        return config

    @classmethod
    def _build(cls, model: Any, env: dict[str, Any]) -> RoutingConfig:
        """The config of a validated routing file (`schema.RoutingFile`) and its env overrides."""
        slack = model.slack.model_dump()
        email = model.email.model_dump()
        slack.update({k: v for k, v in env.items() if k == "base_url"})
        email.update({k: v for k, v in env.items() if k in ("smtp_host", "smtp_port")})
        routes = [
            Route(
                name=r.name or f"route{i}",
                slack_channel=r.slack_channel,
                emails=list(r.emails),
                email_mode=r.email_mode,
                match={k: list(v) for k, v in r.match.model_dump(exclude_none=True).items()},
            )
            for i, r in enumerate(model.routes)
        ]
        default = model.default
        return cls(
            routes=routes,
            default=Route("default", default.slack_channel, list(default.emails), default.email_mode),
            quiet=env.get("quiet", model.quiet),
            suppression_window_s=model.suppression_window_s,
            thread_replies=model.thread_replies,
            storm_threshold=model.storm.threshold,
            storm_window_s=model.storm.window_s,
            owners={k.lower(): v for k, v in model.owners.items()},
            slack=SlackSettings(**slack),
            email=EmailSettings(**email),
            notify_budget_s=model.notify_budget_s,
            retention_days=model.retention_days,
        )

    @classmethod
    def load(cls, source: str | Path | dict[str, Any]) -> RoutingConfig:
        """From a file (Path, or a str naming an existing file or ending in .yml/.yaml), YAML text, or a dict."""
        if isinstance(source, dict):
            return cls.from_dict(source)
        is_path = isinstance(source, Path) or (
            "\n" not in source and (source.endswith((".yml", ".yaml")) or Path(source).exists())
        )
        name = str(source) if is_path else "routing config (YAML text)"
        try:
            data = read_yaml(source) if is_path else parse_yaml(str(source), name)
        except YamlFileError as exc:
            raise RoutingConfigError(name, [("", exc.message)]) from None
        return cls.from_dict(data, source=name)

    def resolve(self, alert: Alert) -> list[Route]:
        """Every matching route (each once, in config order), else the default route. A route
        whose match raises cannot say no: the alert goes to the default route too (logged)."""
        seen: dict[str, Route] = {}
        broken = False
        for r in self.routes:
            try:
                if r.name not in seen and r.matches(alert):
                    seen[r.name] = r
            except Exception:  # noqa: BLE001 - an alert must never vanish in routing
                broken = True
                log.exception(
                    "alerting: route %s could not be matched against %s; default route used", r.name, alert.dag_id
                )
        if broken and self.default.name not in seen:
            seen[self.default.name] = self.default
        return list(seen.values()) or [self.default]

    def route(self, name: str) -> Route | None:
        if name == self.default.name:
            return self.default
        return next((r for r in self.routes if r.name == name), None)

    def slack_id(self, owner: str) -> str | None:
        return self.owners.get(owner.strip().lower())

    def routes_iter(self) -> Iterable[Route]:
        yield from self.routes
        yield self.default
