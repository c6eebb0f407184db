"""Routing: which Slack channel and which e-mail list an alert goes to.

The config (YAML file, YAML text or dict) holds names only: the Slack token, the
webhook URL and the SMTP password are read at send time from environment
variables or Airflow connections named here, and are redacted from every repr
and every log line of this package.

`RoutingConfig.load(path)` / `from_dict(d)` validate it against a strict typed schema
(`alerting.schema`): an unknown key anywhere, a value of the wrong type (`quiet: 'false'`),
a zero or negative duration, a duplicate route name or a secret in the file is an error.
They raise `RoutingConfigError` (a ValueError) listing every problem at once, one line
each, naming the file and the key path; bad UTF-8 and bad YAML (including a key given
twice) name the file too. Env overrides: ALERTING_QUIET (1/0, true/false, yes/no, on/off),
ALERTING_SLACK_BASE_URL, ALERTING_SMTP_HOST, ALERTING_SMTP_PORT; an invalid value is an
error naming the variable.

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

import fnmatch
import json
import logging
import os
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml

from .events import Alert

log = logging.getLogger("alerting")

# ---------------------------------------------------------------- secrets / redaction

_secrets: set[str] = set()
_secrets_lock = threading.Lock()
REDACTED = "***"

# Environment variables whose value is a secret (read at redaction time, never at import).
SECRET_ENV_NAME = re.compile(r"TOKEN|PASSWORD|PASSWD|SECRET|_KEY$|WEBHOOK", re.IGNORECASE)
_NOT_SECRET = {"true", "false", "yes", "no", "on", "off", "none", "null"}
# scheme://user:password@host -> scheme://user:***@host
_URL_CREDENTIALS = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s:/@?#]*):(?P<pw>[^\s@/?#]+)@")
_SLACK_TOKEN = re.compile(r"\b(?P<kind>xox[abposr])-[A-Za-z0-9][A-Za-z0-9\-]*")
_env_cache: tuple[int, frozenset[str]] = (0, frozenset())


def register_secret(value: str | None) -> None:
    if value and len(value) >= 4:
        with _secrets_lock:
            _secrets.add(value)


def _candidates(value: str | None) -> set[str]:
    """A secret value as it may appear in text: itself, and percent-decoded."""
    if not value or len(value) < 4 or value.strip().lower() in _NOT_SECRET:
        return set()
    return {value, unquote(value)} - {""}


def _connection_secrets(raw: str) -> set[str]:
    """The password (and token-like extras) of an AIRFLOW_CONN_* value, URI or JSON."""
    out: set[str] = set()
    raw = raw.strip()
    try:
        if raw.startswith("{"):
            d = json.loads(raw)
            extra = d.get("extra") or {}
            if isinstance(extra, str):
                extra = json.loads(extra) if extra.strip().startswith("{") else {}
            for v in (d.get("password"), extra.get("token"), extra.get("webhook_token"), extra.get("password")):
                out |= _candidates(v if isinstance(v, str) else None)
        else:
            out |= _candidates(urlsplit(raw).password)
    except (ValueError, AttributeError):
        pass
    return {x for x in out if len(x) >= 4}


def env_secrets() -> frozenset[str]:
    """Values of the environment that are secrets: variables named like one (*TOKEN*, *PASSWORD*,
    *SECRET*, *_KEY, *WEBHOOK*), the passwords of AIRFLOW_CONN_* connections, and the password of
    any URL-valued variable (scheme://user:password@host). Read now, cached until the environment changes."""
    global _env_cache
    items = tuple(sorted(os.environ.items()))
    key = hash(items)
    if _env_cache[0] == key and key:
        return _env_cache[1]
    found: set[str] = set()
    for name, value in items:
        if name.upper().startswith("AIRFLOW_CONN_"):
            found |= _connection_secrets(value)
        elif SECRET_ENV_NAME.search(name):
            found |= _candidates(value)
        elif "://" in value and "@" in value:
            found |= _connection_secrets(value)
    result = frozenset(found)
    _env_cache = (key, result)
    return result


def known_secrets() -> list[str]:
    """Every registered credential and every secret of the environment, longest first."""
    with _secrets_lock:
        registered = set(_secrets)
    return sorted(registered | env_secrets(), key=len, reverse=True)


def redact(text: Any, secrets: list[str] | None = None) -> str:
    """The text without any known secret, URL password or Slack-token-shaped string."""
    s = str(text)
    for secret in known_secrets() if secrets is None else secrets:
        if secret in s:
            s = s.replace(secret, REDACTED)
    if "://" in s:
        s = _URL_CREDENTIALS.sub(lambda m: f"{m.group('head')}:{REDACTED}@", s)
    if "xox" in s:
        s = _SLACK_TOKEN.sub(lambda m: f"{m.group('kind')}-{REDACTED}", s)
    return s


class RedactingFilter(logging.Filter):
    """Replaces every known secret in a record's rendered message (and exception text)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001
            return True
        clean = redact(message)
        if record.exc_info and record.exc_info[1] is not None:
            exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = redact(exc_text)
            record.exc_info = None
        record.msg, record.args = clean, None
        return True


def redacting_logger(name: str) -> logging.Logger:
    lg = logging.getLogger(name)
    if not any(isinstance(f, RedactingFilter) for f in lg.filters):
        lg.addFilter(RedactingFilter())
    return lg


redacting_logger("alerting")


class Secret:
    """A resolved credential: never shows its value in repr/str."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value
        register_secret(value)

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)


def _airflow_connection(conn_id: str) -> dict[str, Any] | None:
    """An Airflow connection's fields, from AIRFLOW_CONN_<ID> (URI or JSON) first, then,
    if Airflow is importable, its secrets backends / metadata DB."""
    raw = os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}")
    if raw:
        raw = raw.strip()
        if raw.startswith("{"):
            d = json.loads(raw)
            return {
                "host": d.get("host"),
                "port": d.get("port"),
                "login": d.get("login"),
                "password": d.get("password"),
                "extra": d.get("extra") or {},
            }
        u = urlsplit(raw)
        return {
            "host": unquote(u.hostname or "") or None,
            "port": u.port,
            "login": unquote(u.username) if u.username else None,
            "password": unquote(u.password) if u.password else None,
            "extra": {},
        }
    try:  # lazy: this package does not need Airflow
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(conn_id)
    except Exception:  # noqa: BLE001
        return None
    extra = conn.extra_dejson if hasattr(conn, "extra_dejson") else {}
    return {"host": conn.host, "port": conn.port, "login": conn.login, "password": conn.password, "extra": extra}


def resolve_secret(env: str | None = None, conn_id: str | None = None, field_name: str = "password") -> Secret | None:
    if env and os.environ.get(env):
        return Secret(os.environ[env])
    if conn_id:
        conn = _airflow_connection(conn_id)
        if conn:
            value = conn.get(field_name) or (conn.get("extra") or {}).get(field_name)
            if field_name == "password" and not value:
                value = (conn.get("extra") or {}).get("token") or (conn.get("extra") or {}).get("webhook_token")
            if value:
                return Secret(str(value))
    return None


# ---------------------------------------------------------------- config


@dataclass
class SlackSettings:
    token_env: str | None = "SLACK_BOT_TOKEN"
    token_conn_id: str | None = None
    webhook_env: str | None = None
    webhook_conn_id: str | None = None
    base_url: str | None = None
    timeout_s: float = 3.0
    max_retry_after_s: float = 2.0  # a longer Retry-After is not slept through: the row is redelivered later

    def token(self) -> Secret | None:
        return resolve_secret(self.token_env, self.token_conn_id)

    def webhook_url(self) -> Secret | None:
        url = resolve_secret(self.webhook_env, None)
        if url is None and self.webhook_conn_id:
            conn = _airflow_connection(self.webhook_conn_id)
            if conn:
                password = conn.get("password") or (conn.get("extra") or {}).get("webhook_token")
                if password and str(password).startswith("http"):
                    url = Secret(str(password))
                elif password:
                    host = conn.get("host") or "https://hooks.slack.com/services"
                    url = Secret(host.rstrip("/") + "/" + str(password).lstrip("/"))
        return url


@dataclass
class EmailSettings:
    smtp_host: str = "localhost"
    smtp_port: int = 25
    starttls: bool = False
    sender: str = "airflow-alerts@localhost"
    username_env: str | None = None
    password_env: str | None = None
    conn_id: str | None = None
    timeout_s: float = 5.0

    def credentials(self) -> tuple[str | None, Secret | None]:
        user = os.environ.get(self.username_env) if self.username_env else None
        password = resolve_secret(self.password_env, self.conn_id)
        if user is None and self.conn_id:
            conn = _airflow_connection(self.conn_id)
            user = conn.get("login") if conn else None
        return user, password


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


class RoutingConfigError(ValueError):
    """The routing file is invalid: every problem found, each naming the file and the key path
    (`alerting.yml: routes[1].match.dbt_tags: unknown key (expected one of dbt_tag, dag_tag, dag_id)`).
    `problems` holds them as (key path, message) pairs."""

    def __init__(self, source: str, problems: list[tuple[str, str]]):
        self.source = source
        self.problems = problems
        super().__init__(
            "\n".join(f"{source}: {path}: {msg}" if path else f"{source}: {msg}" for path, msg in problems)
        )


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


def _env_overrides(source: str) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Per-deployment overrides (a mail sink in dev, a test server): env over the file.
    An invalid value is an error naming the variable."""
    out: dict[str, Any] = {}
    errors: list[tuple[str, str]] = []
    quiet = os.environ.get("ALERTING_QUIET")
    if quiet is not None:
        if quiet.strip().lower() in _TRUE + _FALSE:
            out["quiet"] = quiet.strip().lower() in _TRUE
        else:
            errors.append(
                ("ALERTING_QUIET (environment)", f"expected 1/0, true/false, yes/no or on/off, got {quiet!r}")
            )
    url = os.environ.get("ALERTING_SLACK_BASE_URL")
    if url:
        if re.fullmatch(r"https?://\S+", url):
            out["base_url"] = url
        else:
            errors.append(("ALERTING_SLACK_BASE_URL (environment)", "expected an http(s):// URL"))
    host = os.environ.get("ALERTING_SMTP_HOST")
    if host:
        if re.fullmatch(r"[^\s/]+", host):
            out["smtp_host"] = host
        else:
            errors.append(("ALERTING_SMTP_HOST (environment)", f"expected a host name or address, got {host!r}"))
    port = os.environ.get("ALERTING_SMTP_PORT")
    if port:
        if port.strip().isdigit() and 1 <= int(port) <= 65535:
            out["smtp_port"] = int(port)
        else:
            errors.append(("ALERTING_SMTP_PORT (environment)", f"expected a port number 1-65535, got {port!r}"))
    return out, errors


def _duplicate_names(routes: Any) -> list[tuple[str, str]]:
    errors: list[tuple[str, str]] = []
    first: dict[str, int] = {}
    for i, r in enumerate(routes if isinstance(routes, list) else []):
        name = r.get("name") if isinstance(r, dict) else None
        if not isinstance(name, str):
            continue
        if name == "default":
            errors.append((f"routes[{i}].name", "'default' is reserved for the default route"))
        elif name in first:
            errors.append((f"routes[{i}].name", f"duplicate route name {name!r} (also routes[{first[name]}])"))
        else:
            first[name] = i
    return errors


def _yaml_loader() -> type[yaml.SafeLoader]:
    """A safe loader that refuses a key given twice in one mapping (PyYAML keeps the last)."""

    class Loader(yaml.SafeLoader):
        pass

    def mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=deep)
            try:
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"duplicate key {key!r} (first on line {seen[key]})",
                        key_node.start_mark,
                    )
                seen[key] = key_node.start_mark.line + 1
            except TypeError:  # an unhashable key: construct_mapping says so
                pass
        return loader.construct_mapping(node, deep)

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    return Loader


def parse_yaml(data: bytes | str, source: str) -> Any:
    """The YAML document, or RoutingConfigError naming the file (bad UTF-8, bad YAML)."""
    if isinstance(data, bytes):
        raw = data
        try:
            data = raw.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            line = raw[: e.start].count(b"\n") + 1
            raise RoutingConfigError(
                source, [("", f"not UTF-8 text (byte 0x{raw[e.start]:02x} on line {line})")]
            ) from None
    try:
        return yaml.load(data, Loader=_yaml_loader())  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = " ".join(x for x in (e.context, e.problem) if x)
        raise RoutingConfigError(source, [("", f"invalid YAML: {where}{what}")]) from None
    except yaml.YAMLError as e:
        raise RoutingConfigError(source, [("", f"invalid YAML: {e}")]) from None


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

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None, *, source: str = "routing config") -> RoutingConfig:
        """Validate (schema in `alerting.schema`) and build; RoutingConfigError lists every problem."""
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
        errors += _duplicate_names(d.get("routes"))
        env, env_errors = _env_overrides(source)
        errors += env_errors
        if errors or model is None:
            raise RoutingConfigError(source, errors)
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
        return cls(
            routes=routes,
            default=Route(
                name="default",
                slack_channel=model.default.slack_channel,
                emails=list(model.default.emails),
                email_mode=model.default.email_mode,
            ),
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
        if is_path:
            name = str(source)
            try:
                data = Path(source).read_bytes()
            except FileNotFoundError:
                raise RoutingConfigError(name, [("", "file not found")]) from None
            except OSError as e:
                raise RoutingConfigError(name, [("", f"cannot be read: {e.strerror or type(e).__name__}")]) from None
            return cls.from_dict(parse_yaml(data, name), source=name)
        return cls.from_dict(parse_yaml(str(source), "routing config (YAML text)"), source="routing config (YAML text)")

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
