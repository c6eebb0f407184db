"""Create (or reuse) the cosmos virtualenv of the parse-cost benchmark.

    .venv/bin/python bench/cosmos/make_venv.py [--venv var/bench/cosmos-venv]

uv (from our .venv) installs exactly bench/cosmos/requirements.txt from PyPI into its own
virtualenv, so cosmos never shares a site-packages with our orchestrator. The venv is stamped
with the requirements' hash: a second call with unchanged pins does nothing.

Compiled to bytecode, as our .venv is (Makefile): where PYTHONDONTWRITEBYTECODE is set nothing
caches it otherwise, and every DagBag of the benchmark would compile cosmos' modules again.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = Path(__file__).resolve().with_name("requirements.txt")
DEFAULT_VENV = ROOT / "var" / "bench" / "cosmos-venv"


def _uv() -> str:
    for candidate in (Path(sys.executable).with_name("uv"), ROOT / ".venv" / "bin" / "uv"):
        if candidate.exists():
            return str(candidate)
    found = shutil.which("uv")
    if not found:
        raise SystemExit("uv not found: run `make setup` (it installs uv into .venv)")
    return found


def ensure_venv(venv: Path = DEFAULT_VENV, quiet: bool = True) -> Path:
    """The venv's python, after installing the pinned requirements if they changed."""
    python = venv / "bin" / "python"
    stamp = venv / ".bench-requirements.sha256"
    digest = hashlib.sha256(REQUIREMENTS.read_bytes() + b"\n--compile-bytecode").hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text().strip() == digest:
        return python
    uv = _uv()
    q = ["-q"] if quiet else []
    if not python.exists():
        # the same interpreter as ours (Python 3.11), so only the packages differ
        subprocess.run([uv, "venv", *q, "--python", str(ROOT / ".venv" / "bin" / "python"), str(venv)], check=True)
    sync = [uv, "pip", "sync", *q, "--compile-bytecode", "--python", str(python), str(REQUIREMENTS)]
    subprocess.run(sync, check=True)
    stamp.write_text(digest + "\n")
    return python


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV)
    args = parser.parse_args()
    python = ensure_venv(args.venv, quiet=False)
    out = subprocess.run([str(python), "-c", "import airflow, cosmos, dbt.version; "
                          "print('airflow', airflow.__version__, '| cosmos', cosmos.__version__, "
                          "'| dbt-core', dbt.version.__version__)"], capture_output=True, text=True, check=True)
    print(f"{python}: {out.stdout.strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
