"""What `orchestrator init` writes, and how: a file that is new is written, one that is the same is
left alone, the user's own (alerting.yml once it exists) is kept, and one that differs is refused
without --force (which keeps a .bak); each write is atomic."""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path


def show(path: Path) -> str:
    """A path as the user reads it: relative to the current directory when it is inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@dataclass(frozen=True)
class Output:
    path: Path
    text: str
    create_only: bool = False  # the user's file once it exists (alerting.yml): never rewritten


def _state(out: Output) -> str:
    if not out.path.exists():
        return "new"
    try:
        same = out.path.read_text(encoding="utf-8") == out.text
    except (OSError, UnicodeDecodeError):
        same = False
    if same:
        return "unchanged"
    return "kept" if out.create_only else "differs"


def write_outputs(outputs: list[Output], force: bool) -> tuple[dict[Path, str], list[Path]]:
    """Write what is new or (with force) differs, a .bak of each overwritten file; nothing at all
    when a file differs without force. Returns each file's state and the refused files."""
    states = {o.path: _state(o) for o in outputs}
    refused = [p for p, s in states.items() if s == "differs" and not force]
    if refused:
        return states, refused
    for o in outputs:
        state = states[o.path]
        if state in ("unchanged", "kept"):
            continue
        o.path.parent.mkdir(parents=True, exist_ok=True)
        if state == "differs":
            shutil.copy2(o.path, o.path.with_name(o.path.name + ".bak"))
            states[o.path] = "overwritten"
        else:
            states[o.path] = "written"
        tmp = o.path.with_name(f".{o.path.name}.tmp")
        tmp.write_text(o.text, encoding="utf-8")
        os.replace(tmp, o.path)
    return states, []


def write_and_say(outputs: list[Output], force: bool) -> bool:
    """Write them (write_outputs) and say what became of each; False when a file that differs was refused."""
    states, refused = write_outputs(outputs, force)
    print()
    if refused:
        for p in refused:
            print(
                f"error: {p}: exists and differs from what init would write; "
                f"--force overwrites it (keeping {p.name}.bak)",
                file=sys.stderr,
            )
        print("nothing written", file=sys.stderr)
        return False
    for o in outputs:
        note = {
            "kept": "kept (exists: yours to edit)",
            "overwritten": f"overwritten (the previous one is {o.path.name}.bak)",
        }.get(states[o.path], states[o.path])
        print(f"{show(o.path)}: {note}")
    if all(s in ("unchanged", "kept") for s in states.values()):
        print("nothing changed")
    return True
