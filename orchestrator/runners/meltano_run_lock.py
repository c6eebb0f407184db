"""One `meltano run` of a plugin per Meltano project at a time, on one host.

`meltano run` writes each plugin's generated files, the extractor's catalog among them, to
`<.meltano>/run/<plugin>/`, shared by every run of that plugin (not a per-job directory, as
`meltano elt` has). Two runs of one extractor on one project directory at once fail: "Invalid value
for '--catalog': .../run/tap-crm/tap.properties.json: No such file or directory" (seen with two
local Airflows on one checkout). A source's DAG runs one at a time (max_active_runs), but a run by
hand beside it, `orchestrator cycle` beside a local Airflow, or two Airflows on one project do not:
so the runner holds a file lock per extractor, beside Meltano's own `meltano.yml.lock` in that run
directory, for the length of the run. Only the extractor (a run's first block): the sources of one
warehouse load in parallel through one loader, which a lock on the loader would serialise. The
kernel drops a dead process's lock.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

from .file_lock import lock_exclusive

VALUE_OPTIONS = ("--state-id-suffix", "--run-id")  # `meltano run` options that take the next word
# What can name a plugin, and so a lock file: anything else (a path, a shell fragment) is no plugin
# Meltano knows, it refuses the run itself, and nothing of it may become a file name here.
PLUGIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


def run_plugins(args: Sequence[str]) -> list[str]:
    """The extractor a `meltano run ...` names: its first block (options and their values left out)."""
    if not args or args[0] != "run":
        return []
    skip = False
    for arg in args[1:]:
        if skip:
            skip = False
        elif arg.startswith("-"):
            skip = arg in VALUE_OPTIONS
        elif PLUGIN_NAME.fullmatch(arg) and ".." not in arg:
            return [arg]
        else:
            return []  # no plugin name Meltano knows: it refuses the run itself
    return []


def run_dir(project_root: str | Path, env: Mapping[str, str]) -> Path:
    """Meltano's run directory of the project (MELTANO_SYS_DIR_ROOT, when set, relocates `.meltano`)."""
    return Path(project_root) / (env.get("MELTANO_SYS_DIR_ROOT") or ".meltano") / "run"


@contextmanager
def plugin_run_locks(
    args: Sequence[str], project_root: str | Path, env: Mapping[str, str], log: Callable[[str], None] = print
) -> Iterator[None]:
    """Hold the lock of a `meltano run`'s extractor for the duration (no-op for other commands)."""
    plugins = run_plugins(args)
    if not plugins:
        yield
        return
    directory = run_dir(project_root, env)
    directory.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        for plugin in plugins:
            fh = stack.enter_context(open(directory / f"{plugin}.orchestrator.lock", "a+b"))
            lock_exclusive(
                fh,
                log,
                f"orchestrator: waiting for another `meltano run` of {plugin} on this project to end",
                f"orchestrator: {plugin} free after {{seconds:.1f}}s",
            )
        yield
