"""Known-bad loaders are named before they run (issue 17 item 2), and a relative path in a
profile's `env:` is a warning pointing to `paths:` (item 5): `orchestrator check` prints both."""

from __future__ import annotations

import pytest
import yaml
from test_check_matches_dagbag import small_project

from orchestrator.cli import main
from orchestrator.config import REPO_ROOT
from orchestrator.plan.known_loaders import fixed_loader_pip_url, known_defect
from orchestrator.plan.meltano_project import Plugin, load_meltano_project
from orchestrator.plan.profile_checks import looks_like_relative_path


def _loader(pip_url: str | None, executable: str | None = None, name: str = "target-duckdb") -> Plugin:
    return Plugin(name, "loaders", "target_duckdb", {}, (), None, "meltano.yml", pip_url, executable)


@pytest.mark.parametrize(
    "pip_url, executable, name, bad",
    [
        ("target-duckdb==0.8.0", None, "target-duckdb", True),
        ("target-duckdb~=0.6", None, "target-duckdb", True),  # MeltanoHub's pin: admits 0.8.0
        ("target-duckdb", None, "target-duckdb", True),  # unpinned: 0.8.0 is the latest release
        ("target_duckdb==0.8.0 duckdb==1.2.2", "target-duckdb", "warehouse", True),
        ("target-duckdb==0.7.0", None, "target-duckdb", False),
        ("target-duckdb==0.8.0", "target-duckdb-fixed", "target-duckdb", False),  # ours, which pins 0.8.0
        (f"-e {REPO_ROOT}/meltano/load/target-duckdb-fixed", "target-duckdb-fixed", "target-duckdb", False),
        ("meltanolabs-target-postgres==0.8.1", "target-postgres", "target-postgres", False),
        (None, None, "target-duckdb", False),
    ],
)
def test_the_stock_target_duckdb_080_is_recognised(pip_url, executable, name, bad):
    assert (known_defect(_loader(pip_url, executable, name)) is not None) is bad


def test_the_fixed_loader_installs_from_this_checkout():
    assert fixed_loader_pip_url() == str(REPO_ROOT / "meltano" / "load" / "target-duckdb-fixed")
    demo = load_meltano_project(REPO_ROOT / "meltano").loaders["target-duckdb"]
    assert known_defect(demo) is None  # the demo's own loader is the fixed one


STOCK = """
plugins:
  loaders:
  - name: target-wh
    namespace: target_duckdb
    pip_url: target-duckdb==0.8.0
    executable: target-duckdb
"""


def test_check_names_the_stock_loader_what_it_loses_and_the_switch(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("PIPELINE_PROFILE", raising=False)
    config = small_project(tmp_path)
    meltano_yml = tmp_path / "meltano" / "meltano.yml"
    data = yaml.safe_load(meltano_yml.read_text())
    data["plugins"]["loaders"][0].update(yaml.safe_load(STOCK)["plugins"]["loaders"][0])
    meltano_yml.write_text(yaml.safe_dump(data))
    assert main(["--config", str(config), "check", "--no-render"]) == 0  # a warning, not an error
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if "loader target-wh" in x)
    assert str(meltano_yml) in line and "'target-duckdb==0.8.0'" in line
    assert "loses the first record of every batch of a stream whose columns are all strings" in line
    assert f"`pip_url: {fixed_loader_pip_url()}`" in line and "`executable: target-duckdb-fixed`" in line


@pytest.mark.parametrize(
    "value, relative",
    [
        ("var/warehouse.duckdb", True),
        ("./data", True),
        ("../sibling/x", True),
        ("warehouse.duckdb", True),
        (".", True),
        ("/abs/warehouse.duckdb", False),
        ("${HOME}/w.duckdb", False),
        ("~/w.duckdb", False),
        ("sqlite:///var/meltano.db", False),  # a URL: read by one tool only
        ("127.0.0.1", False),
        ("5432", False),
        ("CHANGE-ME", False),
        (True, False),
    ],
)
def test_what_looks_like_a_relative_path(value, relative):
    assert looks_like_relative_path(value) is relative


def test_a_relative_path_in_env_is_a_warning_that_points_to_paths(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("PIPELINE_PROFILE", raising=False)
    config = small_project(tmp_path, config={"profiles.p.env": {"WAREHOUSE": "var/w.duckdb", "HOST": "localhost"}})
    assert main(["--config", str(config), "check", "--no-render"]) == 0
    out = [x for x in capsys.readouterr().out.splitlines() if "env." in x]
    assert len(out) == 1, out
    assert f"{config}: profiles.p.env.WAREHOUSE: 'var/w.duckdb' is a relative path" in out[0]
    assert "move it to `profiles.p.paths`" in out[0]
