"""The built wheel, installed into a fresh virtualenv, runs a user's project through a real Airflow
(issue 11): what a deployment has is the package, not this checkout (no dags/, no repo config,
no .venv on PATH). The bike-share fixture is copied into tmp; the installed `orchestrator init`
writes the DAG files straight into the Airflow home's dags folder, and the installed
`orchestrator run` runs one cycle from a working directory outside the repository. Asserted: every
DAG succeeded, the exact rows in the fixture's DuckDB file, the DAG files the run used are init's,
and nothing was written into the installed package (site-packages).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fixture_project import BIN, DBT_ROWS, DBT_TARGET, RAW_ROWS, copy_fixture
from test_byo_airflow import FIXTURE_CYCLE_DAGS, INIT_ARGS, cli, cycle_dags, states, tree, user_env, warehouse_rows

from orchestrator.config import REPO_ROOT

pytestmark = [pytest.mark.airflow, pytest.mark.meltano]
SOURCES = ("pyproject.toml", "README.md", "orchestrator", "alerting", "demo_data")  # what the wheel is built from
EXTRAS = "duckdb"  # what the fixture needs beyond the plain install (which has Meltano): a DuckDB warehouse


def build_and_install(tmp: Path) -> Path:
    """The wheel built from a copy of the sources (setuptools writes build/ and *.egg-info beside
    the sources: not into the checkout), installed with the extras into a fresh venv; its bin/."""
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        if (REPO_ROOT / name).is_dir():
            shutil.copytree(REPO_ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(REPO_ROOT / name, src / name)
    uv = str(BIN / "uv")
    for argv in (
        [uv, "build", "--wheel", "--out-dir", str(tmp / "dist"), str(src)],
        [uv, "venv", "--python", sys.executable, str(tmp / "venv")],
    ):
        done, _ = cli(argv, tmp, os.environ, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
    [wheel] = (tmp / "dist").glob("*.whl")
    venv_python = tmp / "venv" / "bin" / "python"
    # Compiled as `make setup` compiles its own: each Airflow process of the cycle then imports bytecode
    # (where PYTHONDONTWRITEBYTECODE is set nothing would cache it, and every process compiles anew).
    install = [uv, "pip", "install", "--compile-bytecode", "--python", str(venv_python)]
    install += ["-c", str(REPO_ROOT / "constraints.txt")]
    done, _ = cli([*install, f"{wheel}[{EXTRAS}]"], tmp, os.environ, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return venv_python.parent


@pytest.mark.timeout(1800)
def test_the_installed_wheel_runs_a_cycle_of_the_fixture_from_outside_the_repo(tmp_path):
    bin_ = build_and_install(tmp_path)
    site = next((tmp_path / "venv" / "lib").glob("python3*/site-packages"))
    located = subprocess.run(
        [str(bin_ / "python"), "-c", "import orchestrator; print(orchestrator.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert located.stdout.strip() == str(site / "orchestrator" / "__init__.py"), located.stdout + located.stderr

    fx = copy_fixture(tmp_path)
    home, elsewhere = tmp_path / "airflow", tmp_path / "elsewhere"
    elsewhere.mkdir()
    # Nothing of the checkout on PATH: Meltano, dbt and Airflow must come from the venv.
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if not p.startswith(str(REPO_ROOT)))
    env = user_env(fx, AIRFLOW_HOME=str(home), ORCHESTRATOR_AIRFLOW_HOME=str(home), PATH=path)
    env.pop("PYTHONPATH", None)
    # __pycache__: Python's own bytecode of the modules it imports, not something the orchestrator writes.
    installed = tree(site, skip=("__pycache__",))

    init, t_init = cli(
        [str(bin_ / "orchestrator"), "init", *INIT_ARGS, "--target", DBT_TARGET, "--parse"]
        + ["--dags-folder", str(home / "dags")],
        fx.root,
        env,
    )
    assert init.returncode == 0, init.stderr
    config = fx.root / "orchestration.yml"
    dag_files = {p.name: p.read_bytes() for p in (home / "dags").iterdir()}
    assert sorted(dag_files) == ["orchestrator_dags.py", "orchestrator_plan_errors.py"]
    assert f'CONFIG = Path("{config}")' in dag_files["orchestrator_dags.py"].decode()

    check, t_check = cli([str(bin_ / "orchestrator"), "--config", str(config), "check"], elsewhere, env)
    assert check.returncode == 0 and "11 DAGs (6 dbt), 1 warning(s), 0 error(s)" in check.stdout, check.stderr

    run, t_run = cli([str(bin_ / "orchestrator"), "--config", str(config), "run"], elsewhere, env, timeout=1200)
    print(f"\nwall times from the wheel: init --parse {t_init:.1f}s, check {t_check:.1f}s, run {t_run:.1f}s")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "no local mail sink (aiosmtpd, the `mailsink` extra, is not installed)" in run.stdout  # not an extra here
    assert cycle_dags(bin_ / "orchestrator", config, env) == FIXTURE_CYCLE_DAGS
    assert states(run.stdout) == dict.fromkeys(FIXTURE_CYCLE_DAGS, "success")
    assert warehouse_rows(fx.warehouse) == {**RAW_ROWS[1], **DBT_ROWS[1]}

    # The run parsed the files init wrote (left as they were), and wrote nothing into the package.
    assert {p.name: p.read_bytes() for p in (home / "dags").glob("*.py")} == dag_files
    assert tree(site, skip=("__pycache__",)) == installed, "wrote into the installed package"
    assert list(elsewhere.iterdir()) == [], "wrote into the working directory"
