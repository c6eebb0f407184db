#!/usr/bin/env bash
# The official healthchecks of the Celery worker and the triggerer, against the ones
# docker-compose.yml uses, side by side on a running stack: wall time and CPU time of each, N times.
#
#   COMPOSE_SMOKE_KEEP=1 make compose-smoke          # leaves the stack up
#   bash docker/measure_healthchecks.sh [N]          # default N=3
#   bash scripts/compose_smoke.sh --down
#
# The official ones are those of Airflow's docker-compose.yaml; ours are read from
# docker-compose.yml itself (the worker's and the triggerer's `healthcheck.test`).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
project=${COMPOSE_SMOKE_PROJECT:-orchestrator-smoke}
tries=${1:-3}
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/standin/containers.conf}

container() { podman ps -q --filter "label=com.docker.compose.project=$project" --filter "label=com.docker.compose.service=$1" | head -1; }
# podman-compose's virtualenv (scripts/compose_smoke.sh made it) has PyYAML
python=${COMPOSE_SMOKE_DIR:-$here/../var/compose-smoke}/tools/bin/python
ours() { "$python" -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["services"][sys.argv[2]]["healthcheck"]["test"][1].replace("$$", "$"))' "$here/../docker-compose.yml" "$1"; }

worker=$(container airflow-worker)
triggerer=$(container airflow-triggerer)
[[ -n $worker && -n $triggerer ]] || {
    echo "no running stack of project $project: COMPOSE_SMOKE_KEEP=1 make compose-smoke first" >&2
    exit 1
}

measure() { # label container command
    for _ in $(seq "$tries"); do
        # bash's `time` on a subshell: wall, and the CPU of every process the check started
        out=$(podman exec "$2" bash -c "TIMEFORMAT='%R %U %S'; time ( { $3 ; } >/dev/null 2>&1 )" 2>&1 | tail -1)
        read -r wall user sys <<<"$out"
        printf '%-22s wall %6.2fs  cpu %5.2fs  load %s\n' "$1" "$wall" "$(awk "BEGIN { print $user + $sys }")" "$(cut -d' ' -f1 /proc/loadavg)"
    done
}

measure "worker, official" "$worker" \
    'celery --app airflow.providers.celery.executors.celery_executor.app inspect ping -d "celery@$(hostname)"'
measure "worker, ours" "$worker" "$(ours airflow-worker)"
measure "triggerer, official" "$triggerer" 'airflow jobs check --job-type TriggererJob --hostname "$(hostname)"'
measure "triggerer, ours" "$triggerer" "$(ours airflow-triggerer)"
