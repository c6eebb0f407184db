"""What looks like a secret, whether or not anyone said so: the shapes real error messages carry.

- Yelp's detect-secrets (its regex plugins): AWS keys, GitHub, GitLab, Slack (tokens and webhook
  URLs), Stripe, SendGrid, Twilio, npm, PyPI, OpenAI, Discord, Telegram, Mailchimp, Square,
  Azure storage keys, IBM and SoftLayer keys, JWTs, and its keyword rules (`password = "…"`,
  `"secret": "…"`). Left out on purpose: its high-entropy detectors (they take every git SHA and
  UUID for a secret), the public-IP one (an address is not a credential) and Artifactory's (its
  `AP…` shape matches ordinary upper-case words).
- Airflow's own secrets masker when Airflow is loaded in this process (a task, the DAG
  processor): the connection passwords and variables it was told about, and the field names it
  counts as sensitive (`[core] sensitive_var_conn_names` included).
- Our own shapes where those mask too little: a URL password up to the last `@` of the URL (so
  `postgresql://u:p@ss@db/x` loses all of `p@ss`), `password=` in a DSN cut at the value's end,
  a quoted key named like a secret in JSON or a Python dict, `Bearer`/`Basic` credentials, Slack
  tokens of every prefix (`xapp-`, `xoxe.`) keeping the prefix, GitHub's fine-grained tokens, a
  JWT's signature too, and a whole PEM private key block (detect-secrets finds its first line).

Each shape names the text one of its matches must contain, so a line without any (most lines)
costs a few substring searches, not forty regex scans. `mask_shapes(text)` masks them all;
`sensitive_name(key)` says whether a field of that name holds a secret (its value is masked
whatever it looks like).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

REDACTED = "***"

# Airflow's DEFAULT_SENSITIVE_FIELDS, for when Airflow is not loaded (a field name containing one
# of these, lower-cased with non-word runs as `_`, holds a secret).
SENSITIVE_FIELDS = frozenset(
    {
        "access_key",
        "access_token",
        "api_key",
        "apikey",
        "auth_header",
        "authorization",
        "bearer",
        "connection_string",
        "dsn",
        "passphrase",
        "passwd",
        "password",
        "private_key",
        "proxy",
        "proxy_password",
        "proxies",
        "secret",
        "service_account",
        "service_key",
        "token",
        "keyfile_dict",
        "webhook_url",
    }
)

# detect-secrets' plugins, each with the (lower-case) text one of its matches must contain: a
# string without any is not searched (most log lines), which keeps redaction cheap.
_ASSIGNMENT = ("key", "pw", "pass", "token", "secret")  # its `<name> = <value>` rules need one
_DETECT_SECRETS_PLUGINS: dict[str, tuple[str, ...]] = {
    "aws.AWSKeyDetector": ("akia", "asia", "abia", "acca", "a3t", "aws"),
    "azure_storage_key.AzureStorageKeyDetector": ("accountkey=",),
    "cloudant.CloudantDetector": (*_ASSIGNMENT, "cloudant"),
    "discord.DiscordBotTokenDetector": (".",),
    "github_token.GitHubTokenDetector": ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
    "gitlab_token.GitLabTokenDetector": ("gl", "gr1348941"),
    "ibm_cloud_iam.IbmCloudIamDetector": _ASSIGNMENT,
    "ibm_cos_hmac.IbmCosHmacDetector": ("secret",),
    "jwt.JwtTokenDetector": ("eyj",),
    "mailchimp.MailchimpDetector": ("-us",),
    "npm.NpmDetector": ("_authtoken",),
    "openai.OpenAIDetector": ("t3blbkfj",),
    "pypi_token.PypiTokenDetector": ("pypi-",),
    "sendgrid.SendGridDetector": ("sg.",),
    "slack.SlackDetector": ("xox", "hooks.slack.com"),
    "softlayer.SoftlayerDetector": (*_ASSIGNMENT, "softlayer"),
    "square_oauth.SquareOAuthDetector": ("sq0csp-",),
    "stripe.StripeDetector": ("k_live_",),
    "telegram_token.TelegramBotTokenDetector": (":",),
    "twilio.TwilioKeyDetector": ("ac", "sk"),
}
# ...and its keyword rules (`password = "…"`, `"secret": "…"`): a denylisted word and a quote
_KEYWORDS = ("key", "pass", "pwd", "secret", "contras")
_QUOTES = ("'", '"', "`")

# scheme://user:password@host: the password runs to the last `@` before the URL ends (a password
# may hold `@` and `/`; a host never holds `@`).
_URL_PASSWORD = re.compile(
    r"(?P<keep>\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s:/@?#'\"<>]*:)(?P<secret>[^\s'\"<>]+)@(?=[^\s@'\"<>]*(?:[\s'\"<>]|$))"
)
_SLACK_TOKEN = re.compile(r"\b(?P<keep>(?:xox[a-z]|xapp|xoxe\.xox[a-z])-)(?P<secret>[A-Za-z0-9][A-Za-z0-9\-]*)")
_AUTH_HEADER = re.compile(
    r"(?P<keep>\b(?:Bearer|Basic|Token)\s+)(?!\S*\*\*\*)(?P<secret>[A-Za-z0-9\-._~+/]{8,}=*)", re.IGNORECASE
)
_GITHUB_FINE_GRAINED = re.compile(r"\bgithub_pat_[A-Za-z0-9_]{22,}")
_JWT = re.compile(
    r"\beyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*"
)  # detect-secrets' stops short of the signature
_PEM_PRIVATE_KEY = re.compile(
    r"(?P<keep>-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----)(?P<secret>.*?)(?=-----END [A-Z0-9 ]*PRIVATE KEY|\Z)",
    re.DOTALL,
)


_NON_WORD = re.compile(r"\W+")


@dataclass(frozen=True)
class _Shape:
    """A regex for one shape of secret. `hints`: lower-case strings one of which a match contains
    (none: always searched); `quotes`: a match contains a quote too (`mask_shapes` skips a shape
    whose text is not there). What is masked: the regex's
    `secret` group; else `group`; else, for detect-secrets' regexes, the last group when it ends
    the match (`name = "value"` rules: the value), else the whole match (their other groups are
    prefixes like `(ghp|gho)`); `accept` may refuse a match (a key that names no secret)."""

    regex: re.Pattern[str]
    hints: tuple[str, ...] = ()
    quotes: bool = False
    group: int | None = None
    accept: Callable[[re.Match[str]], bool] | None = None

    def span(self, m: re.Match[str]) -> tuple[int, int] | None:
        if "secret" in self.regex.groupindex:
            return m.span("secret")
        if self.group is not None:
            return m.span(self.group) if m.group(self.group) else None
        last = next((g for g in range(self.regex.groups, 0, -1) if m.group(g)), None)
        if last is not None and m.end() - m.end(last) <= 1:
            return m.span(last)
        return m.span()

    def mask(self, text: str) -> str:
        out, last = [], 0
        for m in self.regex.finditer(text):
            span = self.span(m) if self.accept is None or self.accept(m) else None
            if span is not None and span[0] >= last and text[span[0] : span[1]] != REDACTED:
                out += [text[last : span[0]], REDACTED]
                last = span[1]
        return "".join(out) + text[last:] if out else text


def _keyed_shapes(names: frozenset[str]) -> list[_Shape]:
    """`name=value` (a DSN, a query string, a log line) and `"name": "value"` (JSON, a Python
    dict's repr), for keys that contain one of `names`."""

    def accept(m: re.Match[str]) -> bool:
        key = m.group("key").lower()
        return any(n in key for n in names)

    quoted = re.compile(
        r"(?P<q>[\"'`])(?P<key>[\w.\-]+)(?P=q)\s*[:=]\s*(?P<vq>[\"'`])(?P<secret>(?:\\.|(?!(?P=vq)).)+)(?=(?P=vq))"
    )
    assigned = re.compile(r"(?<![\w.\-])(?P<key>[\w.\-]+)\s*=\s*(?P<secret>'[^']*'|\"[^\"]*\"|[^\s;,&'\"]+)")
    return [
        _Shape(quoted, tuple(names), quotes=True, accept=accept),
        _Shape(assigned, tuple(names), accept=accept),
    ]


@cache
def _detect_secrets_shapes() -> tuple[_Shape, ...]:
    """detect-secrets' regex plugins and keyword rules (imported once, at the first alert)."""
    from importlib import import_module

    from detect_secrets.plugins import keyword

    shapes = []
    for path, hints in _DETECT_SECRETS_PLUGINS.items():
        module, name = path.rsplit(".", 1)
        plugin = getattr(import_module(f"detect_secrets.plugins.{module}"), name)
        shapes += [_Shape(regex, hints) for regex in plugin.denylist]
    # Its keyword rules that need quotes around the value (an unquoted `password=…` is ours:
    # detect-secrets' own runs to the end of the line).
    for regex, group in keyword.QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP.items():
        shapes.append(_Shape(regex, _KEYWORDS, quotes=True, group=group))
    return tuple(shapes)


def airflow_masker() -> Any | None:
    """Airflow's secrets masker, when this process has loaded it (never imported here: Airflow
    takes seconds to import, and a process without it has nothing registered in it)."""
    for name in ("airflow.sdk._shared.secrets_masker", "airflow._shared.secrets_masker"):
        module = sys.modules.get(name)
        if module is not None and hasattr(module, "_secrets_masker"):
            try:
                return module._secrets_masker()
            except Exception:  # noqa: BLE001 - a masker that cannot start masks nothing; ours still run
                continue
    return None


def sensitive_fields(masker: Any = None) -> frozenset[str]:
    """Airflow's sensitive field names when it is loaded (its configuration may add some), else
    its defaults."""
    fields = getattr(masker or airflow_masker(), "sensitive_variables_fields", None)
    return _with_airflows(frozenset(fields)) if fields else SENSITIVE_FIELDS


@cache
def _with_airflows(fields: frozenset[str]) -> frozenset[str]:
    return SENSITIVE_FIELDS | frozenset(f.lower() for f in fields)


@cache
def _own_shapes(fields: frozenset[str]) -> tuple[_Shape, ...]:
    own = [
        _Shape(_URL_PASSWORD, ("://",)),
        _Shape(_SLACK_TOKEN, ("xox", "xapp")),
        _Shape(_AUTH_HEADER, ("bearer", "basic", "token")),
        _Shape(_GITHUB_FINE_GRAINED, ("github_pat_",)),
        _Shape(_JWT, ("eyj",)),
        _Shape(_PEM_PRIVATE_KEY, ("private key",)),
    ]
    return tuple(own + _keyed_shapes(fields | {"pwd"}))  # not "pass": dbt's summary says `PASS=5 WARN=0`


def sensitive_name(name: str) -> bool:
    """A field of this name holds a secret (Airflow's rule: a sensitive word inside the name)."""
    normalised = _NON_WORD.sub("_", name.strip().lower())
    return any(word in normalised for word in sensitive_fields())


@cache
def _shapes(fields: frozenset[str]) -> tuple[tuple[_Shape, ...], dict[str, frozenset[int]]]:
    """Every shape (in the order they apply), and for each hint the shapes to run when a text
    contains it. A hint that contains another of three characters or more is folded into it (a
    text with "api_key" has "key"): fewer substring searches per text, the same shapes run (not
    into "." or ":", which nearly every text has)."""
    shapes = _own_shapes(fields) + _detect_secrets_shapes()
    by_hint: dict[str, set[int]] = {}
    for i, shape in enumerate(shapes):
        for hint in shape.hints:
            by_hint.setdefault(hint, set()).add(i)
    for hint in sorted(by_hint, key=len, reverse=True):
        shorter = next((h for h in by_hint if h != hint and len(h) >= 3 and h in hint), None)
        if shorter is not None:
            by_hint[shorter] |= by_hint.pop(hint)
    return shapes, {hint: frozenset(ids) for hint, ids in by_hint.items()}


def mask_shapes(text: str) -> str:
    """The text with every secret-shaped substring replaced by `***`."""
    if len(text) < 8:  # no credential shape is shorter
        return text
    masker = airflow_masker()
    shapes, by_hint = _shapes(sensitive_fields(masker))
    low = text.lower()
    wanted: set[int] = set()
    for hint, ids in by_hint.items():
        if hint in low:
            wanted |= ids
    quoted = any(q in text for q in _QUOTES)
    for i in sorted(wanted):
        if quoted or not shapes[i].quotes:
            text = shapes[i].mask(text)
    replacer = getattr(masker, "replacer", None)
    if replacer is not None:
        text = replacer.sub(REDACTED, text)
    return text
