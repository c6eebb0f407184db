"""The root cause of a failed Meltano or dbt run, as the one line a person needs first.

Meltano relays each plugin's stderr line by line (`<time> [info     ] tap-x     <line>`) and
logs its own errors, some over several lines (`Catalog discovery failed: ... with stderr:` and the
plugin's whole stderr again). What failed is rarely the last line: it is the exception at the end
of a Python traceback (not a source line of one of its frames: `io.open(self, mode, buffering,
encoding, errors, newline)` is code, not an error), the fatal line of a Singer plugin that logs
instead of raising, or Meltano's own message when no plugin said more. dbt reports
`Compilation Error in model x (models/x.sql)` on one line and what is wrong on the next.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

# "<timestamp> [level    ] <source> <text>": Meltano's console format (source: `meltano` or a plugin)
_PREFIX = re.compile(r"^\S+\s+\[\s*(?P<level>[a-z]+)\s*\]\s+(?P<source>\S+)\s?(?P<text>.*)$")
_EXCEPTION = re.compile(r"^(?P<type>(?:[A-Za-z_]\w*\.)*[A-Z]\w*)(?::\s*(?P<message>.*))?$")
_ERROR_TYPE = re.compile(r"(Error|Exception|Failure|Fault|Interrupt)$")  # an exception class by its name
_FRAME = re.compile(r'^File "[^"]*", line \d+')
_CARET = re.compile(r"^[\s^~]+$")
_CAUSE = "The above exception was the direct cause of the following exception:"
_CONTEXT = "During handling of the above exception, another exception occurred:"
# A plugin that crashed because the other end of its pipe died first is not the cause.
_CONSEQUENCES = ("BrokenPipeError", "ConnectionResetError", "KeyboardInterrupt", "SystemExit")
# Singer plugins that log their fatal error (singer-python: `CRITICAL msg`; the SDK: `... | ERROR | ...`).
_FATAL = re.compile(r"(?:^|[\s|])(?:CRITICAL|FATAL)\b[\s|:\-]*(?P<message>\S.*)$")
# Meltano's own lines that say that something failed, not what.
_GENERIC = re.compile(
    r"^(Extractor failed|Loader failed|Mapper failed|Block run completed|Run invocation could not be completed"
    r"|Run completed|Error: .*failed)",
    re.I,
)


@dataclass(frozen=True)
class Line:
    source: str  # `meltano`, a plugin's name, or "" for output that is neither
    level: str
    text: str  # stripped
    continued: bool = False  # a line of the record above (a multi-line message)


def parse_lines(lines: Sequence[str]) -> list[Line]:
    out: list[Line] = []
    for raw in lines:
        match = _PREFIX.match(raw.rstrip())
        if match:
            out.append(Line(match["source"], match["level"].lower(), match["text"].strip()))
        elif out:
            out.append(Line(out[-1].source, out[-1].level, raw.strip(), continued=True))
        else:
            out.append(Line("", "", raw.strip()))
    return out


@dataclass(frozen=True)
class Raised:
    line: str  # `ExceptionType: message` (its first line)
    type: str
    at: int  # index of the line in the input


def _exception_of(texts: list[tuple[int, str]], start: int) -> tuple[Raised | None, int]:
    """The exception line of the traceback whose header is texts[start]; and where it ends."""
    i, expect_source = start + 1, False
    while i < len(texts):
        at, text = texts[i]
        if _FRAME.match(text):
            expect_source = True
        elif expect_source:
            following = texts[i + 1][1] if i + 1 < len(texts) else ""
            if _EXCEPTION.match(text) and not (_CARET.match(following) or _FRAME.match(following)) and following:
                return Raised(text, _EXCEPTION.match(text)["type"], at), i  # type: ignore[index]
            expect_source = False  # the frame's source line
        elif _CARET.match(text) or not text:
            pass
        elif match := _EXCEPTION.match(text):
            return Raised(text, match["type"], at), i
        i += 1
    return None, i


def tracebacks(texts: list[tuple[int, str]]) -> list[Raised]:
    """The exception each traceback in `texts` ends with (index, text pairs of one source, in
    order); of a chain, the one that says what failed: the last when it was raised *from* the one
    before (the wrapper names the failure), the one before when it occurred *while handling* it."""
    chains: list[list[tuple[Raised, str]]] = []  # each exception with the link that joins it to the one before
    link, i = "", 0
    while i < len(texts):
        text = texts[i][1]
        if text in (_CAUSE, _CONTEXT):
            link = text
        elif text.startswith("Traceback (most recent call last)"):
            raised, i = _exception_of(texts, i)
            if raised is not None:
                if link and chains:
                    chains[-1].append((raised, link))
                else:
                    chains.append([(raised, "")])
            link = ""
        i += 1
    out = []
    for chain in chains:
        k = len(chain) - 1
        while k > 0 and chain[k][1] == _CONTEXT:
            k -= 1
        out.append(chain[k][0])
    return out


def root_error(lines: Sequence[str]) -> str:
    """The root cause in a Meltano run's output, as one line; "" when nothing says more than the
    exit code. In order: a plugin's exception (of the plugin that failed first, its last one), a
    plugin's exception line whose traceback header is cut off, a plugin's fatal line, Meltano's own
    exception or error message."""
    parsed = parse_lines(lines)
    by_source: dict[str, list[tuple[int, str]]] = {}
    for at, line in enumerate(parsed):
        if line.source != "meltano" and not line.continued:
            by_source.setdefault(line.source, []).append((at, line.text))
    crashes = [tb[-1] for texts in by_source.values() if (tb := tracebacks(texts))]
    causes = [c for c in crashes if c.type.rsplit(".", 1)[-1] not in _CONSEQUENCES] or crashes
    if causes:
        return min(causes, key=lambda c: c.at).line
    for line in reversed(parsed):  # a traceback whose header is no longer in the lines
        match = _EXCEPTION.match(line.text)
        if line.source != "meltano" and not line.continued and match and _ERROR_TYPE.search(match["type"]):
            return line.text
    for line in reversed(parsed):
        if line.source != "meltano" and not line.continued and (match := _FATAL.search(line.text)):
            return match["message"].strip()
    own = [(at, line.text) for at, line in enumerate(parsed) if line.source == "meltano"]
    if crashes := tracebacks(own):
        return crashes[-1].line
    for line in reversed(parsed):
        own_error = line.source == "meltano" and line.level in ("error", "critical") and not line.continued
        if own_error and not _GENERIC.match(line.text):
            return line.text.split(" with stderr:")[0].strip()
    return ""


def dbt_root(message: str | None) -> str:
    """dbt's message as one line: `Compilation Error in model x (models/x.sql): what is wrong`
    (dbt writes the header and the detail on two lines); other messages, their first line."""
    lines = [line.strip() for line in (message or "").splitlines() if line.strip()]
    if not lines:
        return ""
    head = lines[0]
    header = re.fullmatch(r"[\w ]*(Error|Exception|Failure)( in \w+ .*)?", head)
    if header and len(lines) > 1:
        return f"{head}: {lines[1]}"
    return head


def dbt_node_root(resource_type: str, name: str, message: str | None) -> str:
    """A failed dbt node's root line, naming the node when dbt's message does not (a test's
    `Got 1 result, configured to fail if != 0`)."""
    root = dbt_root(message) or "failed without a message"
    return root if re.search(rf"\b{re.escape(name)}\b", root) else f"{resource_type} {name}: {root}"
