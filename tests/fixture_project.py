"""The bike-share fixture project (tests/fixtures/bikeshare) for any test: a private copy, ready to run.

    from fixture_project import copy_fixture
    fx = copy_fixture(tmp_path)          # tmp_path/bikeshare: meltano/, dbt/, dbt_profiles/, data in meltano/data
    fx.meltano("run", "tap-docks", "target-lakehouse")
    fx.dbt("build")                      # --profiles-dir fx.profiles_dir --target lakehouse
    fx.append_day()                      # day 2 of the source exports, deterministic

Nothing is written into the repository except the plugins' one-time installation
(tests/fixtures/bikeshare/meltano/.meltano, stamped like `make setup`'s, which runs it too): a
copy links its .meltano/extractors and .meltano/loaders to those virtualenvs. Meltano reuses
them because the fixture's pip_urls are relative (see its meltano.yml). Everything a run writes
(warehouse, Meltano system database and run files, dbt target/ and logs/) stays in the copy.

The constants below are the fixture's contract; tests/fixtures/bikeshare/README.md shows the same
numbers and tests/test_fixture_project.py checks README, constants and real runs against each other.
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURE_ROOT = REPO_ROOT / "tests" / "fixtures" / "bikeshare"
MELTANO_DIR = FIXTURE_ROOT / "meltano"
INSTALL_STAMP = MELTANO_DIR / ".meltano" / ".installed"
BIN = REPO_ROOT / ".venv" / "bin"

MELTANO_ENVIRONMENT = "staging"
EXTRACTORS = ("tap-docks", "tap-fleet")
LOADER = "target-lakehouse"
EXTRACTOR_SCHEMA = {"tap-docks": "raw_docks", "tap-fleet": "raw_fleet"}
DBT_PROJECT = "bikeshare_analytics"
DBT_PROFILE = "bikeshare_lakehouse"
DBT_TARGET = "lakehouse"
ORCHESTRATION_TAGS = ("ingest_quality", "operations", "planning")
# Variables meltano.yml and dbt_profiles/profiles.yml read (no defaults there).
DATA_DIR_VAR, WAREHOUSE_VAR = "BIKESHARE_DATA_DIR", "BIKESHARE_LAKEHOUSE_PATH"

# Raw tables after `meltano run` of both extractors on the exports of days 1..d.
RAW_ROWS = {
    1: {"raw_docks.stations": 8, "raw_docks.trips": 30, "raw_fleet.bikes": 12, "raw_fleet.inspections": 20},
    2: {"raw_docks.stations": 9, "raw_docks.trips": 60, "raw_fleet.bikes": 14, "raw_fleet.inspections": 26},
}
# Keys the day-2 run writes: the new and changed rows of day 2, plus the bookmark row that Singer
# taps re-send (at-least-once; the loader's upsert absorbs it) -- not the other rows of day 1.
DAY2_ROWS_WRITTEN = {"raw_docks.stations": 3, "raw_docks.trips": 31, "raw_fleet.bikes": 5, "raw_fleet.inspections": 7}
# dbt relations after `dbt build` on day 1, then on day 2 (the snapshot keeps both versions of
# the 2 bikes whose status changed on day 2). int_trip_durations is ephemeral: no relation.
DBT_ROWS = {
    1: {
        "bikeshare_reference.districts": 5,
        "bikeshare_reference.rider_tariffs": 2,
        "bikeshare_history.bikes_history": 12,
        "bikeshare_staging.stg_docks__stations": 8,
        "bikeshare_staging.stg_docks__trips": 30,
        "bikeshare_staging.stg_fleet__bikes": 12,
        "bikeshare_staging.stg_fleet__inspections": 20,
        "bikeshare_intermediate.int_stations_districts": 8,
        "bikeshare_intermediate.int_bike_last_inspection": 12,
        "bikeshare_marts.dim_stations": 8,
        "bikeshare_marts.dim_bikes": 12,
        "bikeshare_marts.fct_trips": 30,
        "bikeshare_marts.fct_station_days": 8,
        "bikeshare_marts.planning_district_demand": 4,
        "bikeshare_marts.dq_bike_inspections": 12,
        "bikeshare_reporting.rpt_station_leaderboard": 8,
    },
    2: {
        "bikeshare_reference.districts": 5,
        "bikeshare_reference.rider_tariffs": 2,
        "bikeshare_history.bikes_history": 16,
        "bikeshare_staging.stg_docks__stations": 9,
        "bikeshare_staging.stg_docks__trips": 60,
        "bikeshare_staging.stg_fleet__bikes": 14,
        "bikeshare_staging.stg_fleet__inspections": 26,
        "bikeshare_intermediate.int_stations_districts": 9,
        "bikeshare_intermediate.int_bike_last_inspection": 14,
        "bikeshare_marts.dim_stations": 9,
        "bikeshare_marts.dim_bikes": 14,
        "bikeshare_marts.fct_trips": 60,
        "bikeshare_marts.fct_station_days": 17,
        "bikeshare_marts.planning_district_demand": 8,
        "bikeshare_marts.dq_bike_inspections": 14,
        "bikeshare_reporting.rpt_station_leaderboard": 9,
    },
}
# Orchestration tags of every model, seed and snapshot (other tags: none).
NODE_TAGS = {
    "model.stg_docks__stations": {"operations"},
    "model.stg_docks__trips": {"operations"},
    "model.stg_fleet__bikes": {"operations"},
    "model.stg_fleet__inspections": {"ingest_quality"},
    "model.int_trip_durations": set(),  # ephemeral, between stg_docks__trips and fct_trips / fct_station_days
    "model.int_stations_districts": {"operations"},  # reads the untagged seed districts
    "model.int_bike_last_inspection": {"ingest_quality"},
    "model.dim_stations": {"operations"},
    "model.dim_bikes": {"operations"},
    "model.fct_trips": {"operations"},
    "model.fct_station_days": {"operations", "planning"},  # two orchestration tags
    "model.planning_district_demand": {"planning"},
    "model.dq_bike_inspections": {"ingest_quality"},  # relationships test to dim_bikes (operations)
    "model.rpt_station_leaderboard": set(),  # untagged, downstream of fct_station_days
    "seed.districts": set(),
    "seed.rider_tariffs": {"planning"},
    "snapshot.bikes_history": {"operations"},
}


def _load_datagen() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bikeshare_datagen", FIXTURE_ROOT / "datagen.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


datagen = _load_datagen()


def install_inputs() -> list[Path]:
    """What the installation depends on (the Makefile's stamp rule lists the same files)."""
    tap = MELTANO_DIR / "extract" / "tap-bikeshare-csv"
    loader = REPO_ROOT / "meltano" / "load" / "target-duckdb-fixed"
    return [
        MELTANO_DIR / "meltano.yml",
        tap / "pyproject.toml",
        *sorted((tap / "tap_bikeshare_csv").glob("*.py")),
        loader / "pyproject.toml",
        *sorted((loader / "target_duckdb_fixed").glob("*.py")),
    ]


def _clean_env(base: Mapping[str, str]) -> dict[str, str]:
    # A caller's Meltano or dbt settings (e.g. the Docker image's MELTANO_SYS_DIR_ROOT) must not leak in.
    drop = ("MELTANO_SYS_DIR_ROOT", "MELTANO_PROJECT_ROOT", "MELTANO_ENVIRONMENT", "MELTANO_DATABASE_URI")
    env = {k: v for k, v in base.items() if k not in drop and not k.startswith("DBT_")}
    env.update(MELTANO_SEND_ANONYMOUS_USAGE_STATS="false", DBT_SEND_ANONYMOUS_USAGE_STATS="false")
    return env


def ensure_installed() -> None:
    """`meltano install` in the repository's fixture project unless its stamp is newer than its inputs."""

    def fresh() -> bool:
        return INSTALL_STAMP.exists() and all(
            p.stat().st_mtime <= INSTALL_STAMP.stat().st_mtime for p in install_inputs()
        )

    if fresh():
        return
    INSTALL_STAMP.parent.mkdir(parents=True, exist_ok=True)
    with open(INSTALL_STAMP.parent / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one installer at a time; the others then find it fresh
        if fresh():
            return
        proc = subprocess.run(
            [str(BIN / "meltano"), "install"],
            cwd=MELTANO_DIR,
            env=_clean_env(os.environ),
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"meltano install in {MELTANO_DIR} failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
        # as the Makefile's rule does: each `meltano run` then imports bytecode, not source
        subprocess.run([str(BIN / "python"), "-m", "compileall", "-q", str(MELTANO_DIR / ".meltano")], check=True)
        INSTALL_STAMP.touch()


@dataclass
class FixtureCopy:
    root: Path
    env: dict[str, str] = field(repr=False)

    @property
    def meltano_dir(self) -> Path:
        return self.root / "meltano"

    @property
    def data_dir(self) -> Path:
        return self.meltano_dir / self.env[DATA_DIR_VAR]

    @property
    def dbt_dir(self) -> Path:
        return self.root / "dbt"

    @property
    def profiles_dir(self) -> Path:
        return self.root / "dbt_profiles"

    @property
    def warehouse(self) -> Path:
        return Path(self.env[WAREHOUSE_VAR])

    def meltano(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """`meltano <args>` in the copy's Meltano project (environment: staging, the default)."""
        return _run([str(BIN / "meltano"), *args], self.meltano_dir, self.env, check)

    def dbt(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """`dbt <args> --profiles-dir <dbt_profiles> --target lakehouse` in the copy's dbt project."""
        argv = [str(BIN / "dbt"), *args, "--profiles-dir", str(self.profiles_dir), "--target", DBT_TARGET]
        return _run(argv, self.dbt_dir, self.env, check)

    def append_day(self) -> int:
        """Append the next day to the copy's source exports; return its number."""
        return datagen.append_next_day(self.data_dir)

    def last_day(self) -> int:
        return datagen.last_day(self.data_dir)


def _run(argv: list[str], cwd: Path, env: Mapping[str, str], check: bool) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, cwd=cwd, env=dict(env), capture_output=True, text=True, timeout=900)
    if check and proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return proc


def fixture_env(root: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables the fixture needs, for a copy at `root`: data relative to its Meltano project,
    warehouse and Meltano system database beside the copy."""
    env = _clean_env(os.environ if base is None else base)
    env.update(
        {
            DATA_DIR_VAR: "data",
            WAREHOUSE_VAR: str(root / "lakehouse.duckdb"),
            "MELTANO_DATABASE_URI": f"sqlite:///{root / 'meltano.db'}",
            "DBT_LOG_PATH": str(root / "dbt" / "logs"),
        }
    )
    return env


def copy_fixture(dest: Path, base_env: Mapping[str, str] | None = None) -> FixtureCopy:
    """Copy the fixture to `dest`/bikeshare (day 1 data), its Meltano plugins installed and linked."""
    ensure_installed()
    root = Path(dest) / "bikeshare"
    shutil.copytree(
        FIXTURE_ROOT,
        root,
        symlinks=True,
        ignore=shutil.ignore_patterns(".meltano", "target", "logs", "dbt_packages", "__pycache__", "*.egg-info"),
    )
    sys_dir = root / "meltano" / ".meltano"
    sys_dir.mkdir()
    for kind in ("extractors", "loaders"):
        (sys_dir / kind).symlink_to(MELTANO_DIR / ".meltano" / kind, target_is_directory=True)
    return FixtureCopy(root=root, env=fixture_env(root, base_env))
