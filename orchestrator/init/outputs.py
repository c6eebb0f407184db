"""What `orchestrator init` writes, and how: a file that is new is written, one that is the same is
left alone, the user's own (alerting.yml once it exists) is kept, and one that differs is refused
without --force (which keeps a .bak); each write is atomic."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from ..config import ConfigError


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
    for o in outputs:
        _writable(o.path)
    states = {o.path: _state(o) for o in outputs}
    refused = [p for p, s in states.items() if s == "differs" and not force]
    if refused:
        return states, refused
    todo = [o for o in outputs if states[o.path] not in ("unchanged", "kept")]
    staged = _stage(todo)  # every file's new text beside it first: a failure writes nothing
    for o, tmp in zip(todo, staged, strict=True):
        if states[o.path] == "differs":
            shutil.copy2(o.path, o.path.with_name(o.path.name + ".bak"))
            states[o.path] = "overwritten"
        else:
            states[o.path] = "written"
        os.replace(tmp, o.path)
    return states, []


def _writable(path: Path) -> None:
    """Refuse, before anything is written, a file init cannot write: its folder (or a folder above)
    is a file, or the file is a folder."""
    if path.is_dir():
        raise ConfigError(f"{path}: a folder, where init writes a file: nothing written")
    for folder in path.parents:
        if folder.is_dir():
            return
        if folder.exists() or folder.is_symlink():  # a file, or a dangling link, where a folder must be
            flag = "--dags-folder" if path.name.endswith(".py") else "--config"
            raise ConfigError(f"{folder}: {flag}: a file, not a folder: nothing written")


def _stage(outputs: list[Output]) -> list[Path]:
    """Each output's text in a temporary file beside it, folders made as needed; on any failure,
    what was staged and the folders made are removed, and a ConfigError names the file."""
    staged: list[Path] = []
    made: list[Path] = []
    try:
        for o in outputs:
            missing = [f for f in (o.path.parent, *o.path.parent.parents) if not f.exists()]
            o.path.parent.mkdir(parents=True, exist_ok=True)
            made += reversed(missing)
            tmp = o.path.with_name(f".{o.path.name}.tmp")
            tmp.write_text(o.text, encoding="utf-8")
            staged.append(tmp)
    except OSError as exc:
        for tmp in staged:
            tmp.unlink(missing_ok=True)
        for folder in reversed(made):
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise ConfigError(f"{exc.filename or o.path}: cannot write: {exc.strerror}: nothing written") from None
    return staged


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
