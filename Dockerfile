# The project's Airflow image: the official apache/airflow image (the Airflow and Python of
# constraints.txt) with this project, every Meltano plugin and dbt's manifest baked in, so it runs
# as it is (Kubernetes: docs/kubernetes.md) and docker-compose.yml only mounts the working tree
# over the project files (docs/docker-compose.md).
#
#   docker build -t meltano-dbt-orchestrator:dev .        (or: docker compose build)
#
# tests/test_compose.py checks this file statically: the base image matches constraints.txt's
# apache-airflow, every COPY source exists and is not excluded by .dockerignore, installs use the
# constraints, Meltano's system directory is outside the mounted project directory.
FROM apache/airflow:3.3.2-python3.11

# The official image's documented way to extend it: install as the `airflow` user into the image's
# own virtualenv (/home/airflow/.local), with uv, pinning apache-airflow to the image's version.
# Never _PIP_ADDITIONAL_REQUIREMENTS (reinstalled at every container start).
USER airflow

# PROJECT_DIR: where the project lives. The package is installed editable from here, so the
# orchestrator finds meltano/, dbt_project/, dags/ and orchestration.yml next to its own source
# (orchestrator/profiles.py: REPO_ROOT), and docker-compose.yml bind-mounts the working tree on this
# same path.
#
# MELTANO_SYS_DIR_ROOT: Meltano's system directory (the plugins' virtualenvs, run files, logs),
# by default <project>/meltano/.meltano. It is kept OUTSIDE the project directory so that mounting
# a working tree over the project (docker compose) cannot hide the plugins installed below; a
# developer's own meltano/.meltano (host virtualenvs, unusable in the container) is simply ignored.
ENV PROJECT_DIR=/opt/airflow/project \
    MELTANO_SYS_DIR_ROOT=/opt/airflow/meltano-sys \
    MELTANO_SEND_ANONYMOUS_USAGE_STATS=false \
    DBT_SEND_ANONYMOUS_USAGE_STATS=false \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/airflow/project/dags \
    AIRFLOW__CORE__LOAD_EXAMPLES=False

# 1. The project's dependencies and the demo's extras, pinned by constraints.txt (dbt-core 1.11,
#    the adapters, meltano, celery, providers...). `-r pyproject.toml --extra demo` installs only
#    dependencies: this layer changes with them alone.
COPY --chown=airflow:0 pyproject.toml constraints.txt ${PROJECT_DIR}/
RUN uv pip install --no-cache -c "${PROJECT_DIR}/constraints.txt" \
        "apache-airflow==${AIRFLOW_VERSION}" -r "${PROJECT_DIR}/pyproject.toml" --extra demo

# 2. Every Meltano plugin (both profiles), one virtualenv each under $MELTANO_SYS_DIR_ROOT.
#    meltano.yml pins them (target-duckdb with duckdb 1.2.2 in its own venv; tap-jsonl-dir is
#    installed editable from the project directory, the path the working tree is mounted on).
#    The system database is a throw-away file: at run time it is $MELTANO_DATABASE_URI.
#    Group-writable: containers run as an arbitrary UID in group 0 and Meltano writes run files here.
COPY --chown=airflow:0 meltano ${PROJECT_DIR}/meltano
RUN cd "${PROJECT_DIR}/meltano" \
    && MELTANO_DATABASE_URI=sqlite:////tmp/meltano-build.db meltano install \
    && rm -f /tmp/meltano-build.db \
    && chmod -R g+rwX "${MELTANO_SYS_DIR_ROOT}"

# 3. dbt's packages and target/manifest.json (what the orchestration plan reads), parsed for the
#    production target (the manifest is the same on every target: see macros/generate_schema_name).
COPY --chown=airflow:0 dbt_project ${PROJECT_DIR}/dbt_project
RUN cd "${PROJECT_DIR}/dbt_project" \
    && DBT_LOG_PATH=/tmp/dbt-logs dbt deps --profiles-dir . \
    && DBT_TARGET=postgres DBT_LOG_PATH=/tmp/dbt-logs dbt parse --profiles-dir . \
    && rm -rf /tmp/dbt-logs

# 4. The rest of the project (dags/, orchestrator/, alerting/, demo_data/, orchestration.yml, ...;
#    .dockerignore keeps out local state and secrets), then the project itself, editable and
#    without dependencies (step 1 installed them): the `orchestrator` and `demo-data` commands.
#    var/ is where runs keep their state by default (dbt run dirs, plan cache, state backups).
#    `orchestrator check` fails the build if meltano.yml and the manifest do not wire up.
COPY --chown=airflow:0 . ${PROJECT_DIR}
RUN uv pip install --no-cache --no-deps -c "${PROJECT_DIR}/constraints.txt" -e "${PROJECT_DIR}" \
    && orchestrator --profile production check \
    && mkdir -p "${PROJECT_DIR}/var" \
    && chmod -R g+rwX "${PROJECT_DIR}/var"

WORKDIR /opt/airflow
