"""The typed schema of the routing file (`alerting.yml`), with pydantic v2.

Strict: every key is known (a typo is an error, not a silently ignored setting), every value
has its type (`quiet: 'false'`, a quoted string, is refused rather than read as true), numbers
that cannot be zero or negative are refused, and secrets (`token`, `webhook_url`, `password`,
`url`) are refused with a pointer to the env var / connection keys. `problems()` turns a
pydantic `ValidationError` into `(key path, message)` pairs such as
`("routes[1].match.dbt_tags", "unknown key (expected one of dbt_tag, dag_tag, dag_id)")`.

Also the dict shape of a lateness expectation (`ExpectationModel`). Only `alerting.routing`
and `alerting.lateness` import this module, when a file or dict is validated.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from .messages import EXPECTED, bound, first_errors, got, like_it, more_problems, path_str, unknown_key

# Keys that would hold a secret: never in the file (names of env vars / connections instead).
SECRET_KEYS = {
    "token": "token_env (an environment variable) or token_conn_id (an Airflow connection)",
    "webhook_url": "webhook_env (an environment variable) or webhook_conn_id (an Airflow connection)",
    "url": "webhook_env (an environment variable) or webhook_conn_id (an Airflow connection)",
    "password": "password_env (an environment variable) or conn_id (an Airflow connection)",
}
SECRET_MESSAGE = "secrets do not belong in the routing config; name {hint}"

MATCH_KEYS = ("dbt_tag", "dag_tag", "dag_id")


def _check(pattern: str, what: str) -> Any:
    rx = re.compile(pattern)

    def check(value: str) -> str:
        if not rx.fullmatch(value):
            raise ValueError(f"expected {what}")
        return value

    return AfterValidator(check)


def _one_or_many(value: Any) -> Any:
    """`emails: a@x` is `emails: [a@x]` (and so for match patterns)."""
    return [value] if isinstance(value, str) else value


# An address as this package sends to it: a dot-atom local part and a host name, nothing that
# could end a header or start another (no NUL, CR, LF, `:`, `,`, `;`, `<>`, quotes or spaces), so a
# value like `x:Bcc:evil@y.com` or one with a line break is refused at load, never sent.
_ATOM = r"[\w!#$%&'*+/=?^`{|}~-]+"
_LABEL = r"[^\W_](?:[\w-]*[^\W_])?"
ADDRESS = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})*")
_DISPLAY_NAME = re.compile(r"[^<>:;,\"\\\x00-\x1f\x7f]+")
_ADDRESS_MESSAGE = "expected an e-mail address (name@domain; no spaces, quotes, `:` `,` `;` `<>` or control characters)"


def _sender(value: str) -> str:
    """`address` or `Display Name <address>`."""
    name, angle, rest = value.partition("<")
    ok = ADDRESS.fullmatch(value) is not None
    if angle and rest.endswith(">"):
        ok = ADDRESS.fullmatch(rest[:-1]) is not None and _DISPLAY_NAME.fullmatch(name.strip()) is not None
    if not ok:
        raise ValueError(f"{_ADDRESS_MESSAGE}, or `Name <address>`")
    return value


def _address(value: str) -> str:
    if not ADDRESS.fullmatch(value):
        raise ValueError(_ADDRESS_MESSAGE)
    return value


EnvName = Annotated[str, _check(r"[A-Za-z_][A-Za-z0-9_]*", "an environment variable name (letters, digits, _)")]
ConnId = Annotated[str, _check(r"[A-Za-z0-9_.\-]+", "an Airflow connection id (letters, digits, _ . -)")]
Address = Annotated[str, AfterValidator(_address)]
SlackUserId = Annotated[str, _check(r"[UW][A-Z0-9]+", "a Slack user id (like U012ABCDEF)")]
Channel = Annotated[str, _check(r"[^\s,]{1,80}", "a Slack channel (#name or its id, no spaces)")]
Pattern = Annotated[str, Field(min_length=1)]
Host = Annotated[str, _check(r"[^\s/]+", "a host name or address")]
HttpUrl = Annotated[str, _check(r"https?://[^\s]+", "an http(s):// URL")]
# At most a year (and retention ten): far inside what a timedelta or a socket timeout holds (1e15 s
# passed validation and overflowed when the first alert came).
YEAR_S = 366 * 24 * 3600
Seconds = Annotated[float, Field(gt=0, le=YEAR_S)]
Patterns = Annotated[list[Pattern], BeforeValidator(_one_or_many), Field(min_length=1)]
Addresses = Annotated[list[Address], BeforeValidator(_one_or_many)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class StormModel(_Model):
    threshold: Annotated[int, Field(ge=1)] = 5
    window_s: Seconds = 600.0


class SlackModel(_Model):
    token_env: EnvName | None = "SLACK_BOT_TOKEN"
    token_conn_id: ConnId | None = None
    webhook_env: EnvName | None = None
    webhook_conn_id: ConnId | None = None
    base_url: HttpUrl | None = None
    timeout_s: Seconds = 3.0
    max_retry_after_s: Annotated[float, Field(ge=0, le=YEAR_S)] = 2.0


class EmailModel(_Model):
    smtp_host: Host = "localhost"
    smtp_port: Annotated[int, Field(ge=1, le=65535)] = 25
    starttls: bool = False
    sender: Annotated[str, AfterValidator(_sender)] = "airflow-alerts@localhost"
    username_env: EnvName | None = None
    password_env: EnvName | None = None
    conn_id: ConnId | None = None
    timeout_s: Seconds = 5.0


class MatchModel(_Model):
    dbt_tag: Patterns | None = None
    dag_tag: Patterns | None = None
    dag_id: Patterns | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> MatchModel:
        if not any(getattr(self, k) for k in MATCH_KEYS):
            raise ValueError(f"expected at least one of {', '.join(MATCH_KEYS)} (an empty match never matches)")
        return self


class _Destinations(_Model):
    slack_channel: Channel | None = None
    emails: Addresses = []
    email_mode: Literal["fallback", "always"] = "fallback"


class RouteModel(_Destinations):
    name: Annotated[str, _check(r"[^\s,]{1,200}", "a route name (no spaces, at most 200 characters)")] | None = None
    match: MatchModel

    @model_validator(mode="after")
    def _somewhere(self) -> RouteModel:
        if not self.slack_channel and not self.emails:
            raise ValueError("a route needs slack_channel or emails (else its alerts go nowhere)")
        return self


class DefaultModel(_Destinations):
    pass


class RoutingFile(_Model):
    quiet: bool = False
    suppression_window_s: Seconds = 3600.0
    thread_replies: bool = False
    storm: StormModel = StormModel()
    notify_budget_s: Seconds = 10.0
    retention_days: Annotated[float, Field(gt=0, le=3660)] = 30.0
    slack: SlackModel = SlackModel()
    email: EmailModel = EmailModel()
    owners: dict[Address, SlackUserId] = {}
    routes: list[RouteModel] = []
    default: DefaultModel = DefaultModel()

    @model_validator(mode="before")
    @classmethod
    def _null_sections(cls, data: Any) -> Any:
        """`slack:` with nothing under it (YAML null) is an empty section, as before."""
        if isinstance(data, dict):
            sections: dict[str, Any] = {
                "storm": {},
                "slack": {},
                "email": {},
                "owners": {},
                "routes": [],
                "default": {},
            }
            data = {k: (sections[k] if v is None and k in sections else v) for k, v in data.items()}
        return data


def _tuple_as_list(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


Names = Annotated[list[Annotated[str, Field(min_length=1)]], BeforeValidator(_tuple_as_list)]


class ExpectationModel(_Model):
    """The dict shape of `alerting.lateness.Expectation`."""

    dag_id: Annotated[str, Field(min_length=1)]
    upstream: Names
    outlets: Names
    within_s: Seconds
    dag_tags: Names = []
    dbt_tag: Annotated[str, Field(min_length=1)] | None = None


# ------------------------------------------------------------------ error messages (wording: messages.py)


def problems(
    exc: ValidationError, root: type[BaseModel], *, quiet_values: tuple[str, ...] = ()
) -> list[tuple[str, str]]:
    """(key path, message) for each error; values under a top-level key in `quiet_values` are
    never echoed (they might be credentials pasted in the wrong place)."""
    out: list[tuple[str, str]] = []
    shown, more = first_errors(exc)
    for err in shown:
        loc = tuple(err["loc"])
        kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
        echo = not (loc and loc[0] in quiet_values)
        if kind == "extra_forbidden":
            key = str(loc[-1])
            message = SECRET_MESSAGE.format(hint=SECRET_KEYS[key]) if key in SECRET_KEYS else unknown_key(root, loc)
            out.append((path_str(loc), message))
            continue
        if kind == "value_error":
            message = str(ctx.get("error") or err["msg"])
        elif kind == "literal_error":
            message = "expected " + str(ctx.get("expected", "")).replace("'", "")
        elif kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
            message = bound(kind, ctx)
        elif kind == "string_type" and len(loc) == 2 and loc[0] == "owners":
            message = "expected a Slack user id (like U012ABCDEF)"
        elif kind == "missing" and loc and loc[-1] == "match":
            message = f"required: a route needs a match (keys {', '.join(MATCH_KEYS)})"
        else:
            message = EXPECTED.get(kind, err["msg"])
        if kind != "missing" and echo and not isinstance(value, dict):
            message += f", got {got(value)}"
        out.append((path_str(loc), message + like_it(err)))
    if more:
        out.append(("", more_problems(more)))
    return out
