"""The install command of the docs installs what a new user's first hour needs (issue 21, item 1).

The command is parsed out of docs/your-project.md (step 1), so it cannot drift from what is tested,
and run literally with pip in a fresh virtualenv, in a copy of the checkout. Then the docs' step 2
(`dbt deps`, `dbt parse`, `orchestrator init`) and `check` run on a copy of the bike-share fixture
with that virtualenv's commands only. The README gives the same two lines; pyproject.toml's plain
dependencies and extras are what the docs say.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib

import pytest
from fixture_project import copy_fixture

from orchestrator.config import REPO_ROOT
from orchestrator.init.command import adapter_missing

DOCS = REPO_ROOT / "docs" / "your-project.md"
CHECKOUT_PLACEHOLDER = "/path/to/meltano-dbt-orchestrator"
DOCS_FIXTURE_ROOT = "/tmp/riverside/bikeshare"  # where the docs' transcript copied the fixture
SOURCES = ("pyproject.toml", "README.md", "constraints.txt", "orchestrator", "alerting", "demo_data")


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return text[start : end if end > 0 else len(text)]


def _blocks(text: str) -> list[list[str]]:
    """The fenced code blocks of `text`, as lines."""
    return [block.strip("\n").splitlines() for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S)]


def _command(line: str) -> str:
    """A shell line without its trailing comment (the docs' comments start after two spaces)."""
    return re.split(r"\s{2,}#", line, maxsplit=1)[0].strip()


def documented_install() -> list[str]:
    """Step 1's commands: `cd <checkout>` and the pip install."""
    [block] = _blocks(_section(DOCS.read_text(), "## 1. Install into Airflow's environment"))[:1]
    return [_command(line) for line in block]


def documented_first_steps() -> list[str]:
    """Step 2's transcript lines: the exports, `dbt deps` + `dbt parse`, then `orchestrator init`."""
    blocks = _blocks(_section(DOCS.read_text(), "## 2. Build the dbt manifest"))
    commands = [line.removeprefix("$ ") for block in blocks[:2] for line in block if line.startswith("$ ")]
    return commands


def test_the_docs_and_the_readme_give_one_install_command():
    install = documented_install()
    assert install == [f"cd {CHECKOUT_PLACEHOLDER}", 'pip install -c constraints.txt ".[duckdb]"']
    readme = [
        _command(line)
        for block in _blocks(_section(REPO_ROOT.joinpath("README.md").read_text(), "## Use it"))
        for line in block
    ]
    assert readme[:2] == install


def test_the_plain_install_has_meltano_and_each_documented_warehouse_an_extra():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[<>=~\[ ]", d, maxsplit=1)[0] for d in project["dependencies"]}
    assert {"apache-airflow", "dbt-core", "meltano"} <= names
    assert not any(n.startswith("dbt-") and n != "dbt-core" for n in names), "an adapter is the warehouse's extra"
    extras = project["optional-dependencies"]
    section = _section(DOCS.read_text(), "## 1. Install into Airflow's environment")
    for extra, adapter in (("duckdb", "dbt-duckdb"), ("postgres", "dbt-postgres")):
        assert any(d.startswith(adapter) for d in extras[extra])
        assert f'`".[{extra}]"`' in section
    assert "meltano" in extras  # `[duckdb,meltano]`, as older docs wrote it, still installs


def test_a_missing_adapter_names_the_extra_or_the_package():
    assert adapter_missing("duckdb") is None  # this venv has it
    assert adapter_missing("snowflake") == (
        f'dbt\'s snowflake adapter is not installed in this Python ({sys.prefix}): pip install "dbt-snowflake~=1.11.0"'
    )


@pytest.mark.meltano  # a fresh virtualenv and pip: minutes (the tier of slow subprocess tests)
@pytest.mark.timeout(2400)
def test_the_documented_install_runs_init_and_check_on_the_fixture(tmp_path):
    checkout = tmp_path / "meltano-dbt-orchestrator"
    checkout.mkdir()
    for name in SOURCES:
        src = REPO_ROOT / name
        if src.is_dir():
            shutil.copytree(src, checkout / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(src, checkout / name)
    venv = tmp_path / "airflow-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    # Nothing of this checkout on PATH: pip, dbt, meltano and orchestrator come from the fresh venv.
    path = os.pathsep.join([str(venv / "bin"), "/usr/local/bin", "/usr/bin", "/bin"])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DBT_", "MELTANO_", "VIRTUAL_ENV", "PYTHON"))}
    env.update(PATH=path, VIRTUAL_ENV=str(venv), HOME=str(tmp_path / "home"))
    env.update(DBT_SEND_ANONYMOUS_USAGE_STATS="false", MELTANO_SEND_ANONYMOUS_USAGE_STATS="false")
    env.pop("ORCHESTRATION_CONFIG", None)
    script = "set -e\n" + "\n".join(documented_install()).replace(CHECKOUT_PLACEHOLDER, str(checkout))
    done = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=2100)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for tool in ("orchestrator", "dbt", "meltano", "airflow"):
        assert (venv / "bin" / tool).exists(), f"the documented install has no {tool}"

    fx = copy_fixture(tmp_path / "projects")
    steps = [c.replace(DOCS_FIXTURE_ROOT, str(fx.root)) for c in documented_first_steps()]
    assert [s.split()[0] for s in steps] == ["export", "cd", "orchestrator"], steps
    script = "set -e\n" + "\n".join([*steps, "orchestrator --config orchestration.yml check"])
    done = subprocess.run(["bash", "-c", script], cwd=fx.root, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert (fx.dbt_dir / "target" / "manifest.json").exists()
    assert "chosen: [operations, ingest_quality, planning]" in done.stdout
    assert done.stdout.rstrip().endswith("11 DAGs (6 dbt), 1 warning(s), 0 error(s)"), done.stdout[-2000:]
    assert "adapter is not installed" not in done.stdout
