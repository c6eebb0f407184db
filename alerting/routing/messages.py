"""How a pydantic validation error reads to a user, in one wording for every config file: the
routing file here, and orchestration.yml and meltano.yml (orchestrator/plan/schema.py uses this
module; alerting never imports orchestrator, so the shared piece lives on this side).

    key.path: message, got VALUE (its type)

What a message quotes is bounded: a value at `QUOTE_MAX` characters, computed without ever
rendering the whole of it (a 50 MB string, a list of a million items), and each key of a path at
`KEY_MAX`; a message is one line, whatever the value holds.
"""

from __future__ import annotations

import re
import reprlib
import types
import typing
from typing import Annotated, Any

from pydantic import BaseModel, ValidationError

TYPE_NAMES: dict[type, str] = {
    str: "a string",
    bool: "true/false",
    int: "a whole number",
    float: "a number",
    list: "a list",
    dict: "a mapping",
    type(None): "null",
}
EXPECTED = {
    "string_type": "expected a string",
    "bool_type": "expected true or false",
    "int_type": "expected a whole number",
    "int_from_float": "expected a whole number",
    "int_parsing": "expected a whole number",
    "float_type": "expected a number",
    "finite_number": "expected a finite number",
    "list_type": "expected a list",
    "dict_type": "expected a mapping (key: value)",
    "model_type": "expected a mapping (key: value)",
    "model_attributes_type": "expected a mapping (key: value)",
    "too_short": "must not be empty",
    "string_too_short": "must not be empty",
    "missing": "required",
}


def type_name(value: Any) -> str:
    return next((name for t, name in TYPE_NAMES.items() if type(value) is t), type(value).__name__)


QUOTE_MAX = 60  # characters of a quoted value
PROBLEMS_MAX = 20  # problems listed from one validation (a list of 30,000 wrong items is one mistake)
KEY_MAX = 60  # characters of one key in a key path


def _bounded_repr() -> reprlib.Repr:
    r = reprlib.Repr()
    r.maxlevel, r.maxlist, r.maxtuple, r.maxset, r.maxfrozenset, r.maxdict = 2, 4, 4, 4, 4, 4
    r.maxstring, r.maxother, r.maxlong = QUOTE_MAX, QUOTE_MAX, QUOTE_MAX
    return r


_REPR = _bounded_repr()


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def shorten(text: str, limit: int = QUOTE_MAX) -> str:
    """One line of at most `limit` characters (`...` where cut), control characters escaped."""
    text = _CONTROL.sub(lambda m: repr(m.group())[1:-1], text[: limit * 4])
    return text if len(text) <= limit else text[: limit - 3] + "..."


def quote(value: Any) -> str:
    """The value's repr, bounded: reprlib looks at no more of it than it shows."""
    try:
        text = _REPR.repr(value)
    except Exception:  # noqa: BLE001 - e.g. an int past Python's 4300 digits: say what it is instead
        text = f"<{type(value).__name__}>"
    return shorten(text)


def got(value: Any) -> str:
    """`'2' (a string)`: the value as written, shortened, and its type."""
    return f"{quote(value)} ({type_name(value)})"


def path_str(loc: tuple[Any, ...]) -> str:
    """A pydantic location as a key path: `routes[1].match.dbt_tags`, `env.X (the key)`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "[key]":
            out += " (the key)"
        elif str(part).startswith(("function-", "constrained-")):
            continue
        else:
            out += ("." if out else "") + shorten(str(part), KEY_MAX)
    return out or "(top level)"


def _unwrap(tp: Any) -> Any:
    while True:
        origin = typing.get_origin(tp)
        if origin is Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            tp = next(a for a in typing.get_args(tp) if a is not type(None))
        else:
            return tp


def model_at(root: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model class a key path leads to (for the "expected one of" of an unknown key)."""
    tp: Any = root
    for part in loc:
        tp = _unwrap(tp)
        origin = typing.get_origin(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel) and isinstance(part, str):
            field = tp.model_fields.get(part)
            if field is None:
                return None
            tp = field.annotation
        elif origin is list and isinstance(part, int):
            tp = typing.get_args(tp)[0]
        elif origin is dict and isinstance(part, str):
            tp = typing.get_args(tp)[1]
        else:
            return None
    tp = _unwrap(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def unknown_key(root: type[BaseModel], loc: tuple[Any, ...]) -> str:
    """`unknown key (did you mean X? expected one of A, B, C)`."""
    model = model_at(root, loc[:-1])
    if model is None:
        return "unknown key"
    known, key = list(model.model_fields), str(loc[-1])
    if len(key) > KEY_MAX:  # no typo of a known key is that long (and difflib's cost grows with it)
        return f"unknown key (expected one of {', '.join(known)})"
    import difflib  # a typo's message: not every parse of a valid config

    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6) or [
        k for k in known if len(key) >= 3 and (k.startswith(key) or key.startswith(k))
    ]
    hint = f"did you mean {close[0]}? " if close else ""
    return f"unknown key ({hint}expected one of {', '.join(known)})"


def bound(kind: str, ctx: dict[str, Any]) -> str:
    """The message of a numeric limit (greater_than, greater_than_equal, less_than, less_than_equal)."""
    value = next(iter(ctx.values()), "")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    word = {"greater_than": "greater than", "greater_than_equal": "at least", "less_than": "less than"}
    return f"must be {word.get(kind, 'at most')} {value}"


def first_errors(exc: ValidationError) -> tuple[list[dict[str, Any]], int]:
    """A validation's errors as a user should read them: one per kind of mistake (the same error
    at every index of a list is one mistake: its first, with `like_it` counting the others), at
    most `PROBLEMS_MAX`; and how many more there are past those."""
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    for err in exc.errors(include_url=False):
        key = (err["type"], *("*" if isinstance(part, int) else part for part in err["loc"]))
        if key in groups:
            groups[key]["like_it"] += 1
        else:
            groups[key] = {**err, "like_it": 0}
    shown = list(groups.values())
    return shown[:PROBLEMS_MAX], sum(1 + g["like_it"] for g in shown[PROBLEMS_MAX:])


def like_it(err: dict[str, Any]) -> str:
    """What to add to a message that stands for more errors of its kind."""
    return f" (and {err['like_it']:,} more like it)" if err.get("like_it") else ""


def more_problems(count: int) -> str:
    return f"... and {count:,} more problems"
