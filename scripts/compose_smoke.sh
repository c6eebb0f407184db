#!/usr/bin/env bash
# One real cycle of docker-compose.yml on this machine, end to end, then everything removed:
#
#   make compose-smoke          (or: bash scripts/compose_smoke.sh)
#
#  1. the engine: podman, runc and debootstrap (apt-get, when missing and root), and podman-compose
#     in a virtualenv of its own ($COMPOSE_SMOKE_DIR/tools, never the project's .venv);
#  2. the base images, when missing: docker/standin/build.sh builds STAND-INS for the official
#     images from the apt and PyPI mirrors (no image registry is reachable here) and says which;
#  3. the project's image (the Dockerfile), when missing or when what it installs changed;
#  4. a copy of this working tree (tracked and untracked files, not ignored ones) with a .env from
#     .env.example on free host ports, booted service by service in the order of depends_on
#     (BOOT_STAGES below), each waited for: healthy, or exited 0 for the one-shots;
#  5. one cycle through Airflow on the CeleryExecutor (docker/compose_cycle.py, in the worker):
#     tick -> the Meltano DAGs -> the dbt DAGs, and one provoked alert (a refused Meltano state write);
#  6. checks from outside the stack: rows in the PostgreSQL warehouse, the alert e-mail in the mail
#     sink; prints the boot time and the cycle time;
#  7. removes the containers, volumes, network and pod, whatever happened (COMPOSE_SMOKE_KEEP=1 keeps
#     them for a look; `scripts/compose_smoke.sh --down` or the next run removes them).
#
# Exit 0 only when every DAG of the cycle succeeded, the warehouse has the exact rows expected and
# the alert e-mail arrived.
# Takes 8-13 min with the images built (more on the first run: docs/docker-compose.md), so it is
# not part of `make test`; tests/test_compose.py checks that this script and the compose file agree.
set -euo pipefail

{ # bash reads the whole block before running it: editing this file during a run cannot change the run

root=$(cd "$(dirname "$0")/.." && pwd)
work=${COMPOSE_SMOKE_DIR:-$root/var/compose-smoke}
project=${COMPOSE_SMOKE_PROJECT:-orchestrator-smoke}
image=meltano-dbt-orchestrator:dev
podman_compose_version=1.6.0
airflow_uid=50000 # the official image's `airflow` user; the copy of the tree is chowned to it
export COMPOSE_SMOKE_DIR=$work
# runc, and ulimits no higher than a sandbox without CAP_SYS_RESOURCE allows (docker/standin/README.md)
export CONTAINERS_CONF=${CONTAINERS_CONF:-$root/docker/standin/containers.conf}

# Services in the order their depends_on allows; a stage starts once every service of the stages
# before it is healthy (long-running) or exited 0 (one-shot).
BOOT_STAGES=(
    "postgres mariadb redis mailpit"
    "airflow-init"
    "demo-seed dbt-parse meltano-init airflow-apiserver airflow-scheduler airflow-triggerer"
    "airflow-dag-processor airflow-worker"
)
ONE_SHOTS="airflow-init demo-seed dbt-parse meltano-init"
# What the cycle must leave in the warehouse, exactly, after demo-seed's day 1 (DEMO_SEED_DAYS=1):
# every table the three Meltano DAGs load, and what each dbt DAG builds last (tests/test_compose.py
# derives these counts from the demo's generator and seed).
WAREHOUSE_ROWS="raw_shop.customers=25 raw_shop.orders=60 raw_shop.payments=68 raw_crm.accounts=6
raw_marketing.campaigns=5 raw_marketing.ad_spend=5 analytics.dim_customers=25 analytics.fct_orders=60
analytics.fct_payments=68 analytics.finance_daily_revenue=1 analytics.marketing_campaign_performance=5
reference.payment_methods=4 reporting.exec_daily_summary=1"
cycle_driver="docker/compose_cycle.py" # run in the worker: the cycle, then the provoked alert
ALERT_SUBJECT="Task failed: meltano_state" # the provoked failure's e-mail
BOOT_TIMEOUT=${COMPOSE_SMOKE_BOOT_TIMEOUT:-900} # per stage, seconds
MAIL_TIMEOUT=180

t0=$(date +%s)
log() { printf '[%s %5ss] %s\n' "$(date +%H:%M:%S)" "$(($(date +%s) - t0))" "$*"; }
die() {
    log "FAILED: $*"
    exit 1
}

# ---------------------------------------------------------------------------- 1. the engine
missing=""
for tool in podman runc debootstrap; do command -v "$tool" >/dev/null || missing="$missing $tool"; done
if [[ -n $missing ]]; then
    [[ $(id -u) -eq 0 ]] || die "missing:$missing (apt-get install podman runc debootstrap)"
    log "installing$missing (apt-get)"
    apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing >/dev/null
fi
compose_bin=$work/tools/bin/podman-compose
if ! "$compose_bin" --version 2>/dev/null | grep -q "podman-compose version $podman_compose_version"; then
    log "installing podman-compose $podman_compose_version into $work/tools"
    python3 -m venv "$work/tools"
    "$work/tools/bin/pip" install -q "podman-compose==$podman_compose_version"
fi
checkout=$work/checkout
compose() { (cd "$checkout" && "$compose_bin" -p "$project" "$@"); }
container() { podman ps -aq --filter "label=com.docker.compose.project=$project" --filter "label=com.docker.compose.service=$1" | head -1; }

# Removes every container, volume, network and pod of the project; prints how many are left.
remove_stack() {
    if [[ -d $checkout ]]; then compose down -v -t 10 >/dev/null 2>&1 || true; fi
    # Whatever podman-compose left (a half-created container, a failed run): by the project's labels.
    local ids
    ids=$(podman ps -aq --filter "label=com.docker.compose.project=$project")
    [[ -z $ids ]] || podman rm -f -t 5 $ids >/dev/null 2>&1 || true
    ids=$(podman volume ls -q --filter "label=com.docker.compose.project=$project")
    [[ -z $ids ]] || podman volume rm -f $ids >/dev/null 2>&1 || true
    podman network rm -f "${project}_default" >/dev/null 2>&1 || true
    podman pod rm -f "pod_$project" >/dev/null 2>&1 || true
    echo $(($(podman ps -aq --filter "label=com.docker.compose.project=$project" | wc -l) +
        $(podman volume ls -q --filter "label=com.docker.compose.project=$project" | wc -l)))
}

teardown() {
    local code=$?
    if [[ ${COMPOSE_SMOKE_KEEP:-} == 1 ]]; then
        log "COMPOSE_SMOKE_KEEP=1: the stack is left up (project $project, in $checkout)"
        exit "$code"
    fi
    log "tearing down: containers, volumes, network, pod of project $project"
    local left
    left=$(remove_stack)
    if [[ $left -ne 0 ]]; then
        log "teardown left $left container(s)/volume(s) of $project behind"
        code=1
    fi
    exit "$code"
}

if [[ ${1:-} == --down ]]; then
    log "removing the stack of project $project"
    left=$(remove_stack)
    [[ $left -eq 0 ]] || die "$left container(s)/volume(s) of $project left"
    exit 0
fi

# ---------------------------------------------------------------------------- 2, 3. the images
log "base images (stand-ins where no official image is present):"
bash "$root/docker/standin/build.sh" | sed -u 's/^/    /'

# What the image installs, so that a change to it rebuilds: its base image, the Dockerfile and its
# build context's rules, the dependencies, and Meltano's plugins. The rest of the tree is mounted.
inputs=$(cd "$root" && {
    podman image inspect --format '{{.Id}}' "$(sed -n 's/^FROM //p' Dockerfile | head -1)"
    cat Dockerfile .dockerignore pyproject.toml constraints.txt meltano/meltano.yml \
        meltano/extract/*.meltano.yml meltano/load/*.meltano.yml
} | sha256sum | cut -c1-16)
have=$(podman image inspect --format '{{ index .Labels "io.meltano-dbt-orchestrator.inputs" }}' "$image" 2>/dev/null || true)
build_s=0
if [[ $have != "$inputs" ]]; then
    log "building the project's image $image from the Dockerfile (several minutes: Airflow, dbt, Meltano's plugins)"
    b0=$(date +%s)
    podman build -q --label "io.meltano-dbt-orchestrator.inputs=$inputs" -t "$image" "$root" >"$work/image-build.log" 2>&1 ||
        {
            tail -30 "$work/image-build.log"
            die "image build failed (log: $work/image-build.log)"
        }
    build_s=$(($(date +%s) - b0))
    log "    built in ${build_s}s"
    # The image this replaced, untagged now (only ours: by the label).
    podman image prune -f --filter "label=io.meltano-dbt-orchestrator.inputs" >/dev/null 2>&1 || true
else
    log "project image $image is current (inputs $inputs)"
fi

# ---------------------------------------------------------------------------- 4. boot
# A leftover stack of an earlier run (COMPOSE_SMOKE_KEEP=1, a killed run): removed first.
if [[ -n $(podman ps -aq --filter "label=com.docker.compose.project=$project") ]]; then
    log "removing the stack an earlier run left"
    [[ $(remove_stack) -eq 0 ]] || die "could not remove the earlier stack of $project"
fi
trap teardown EXIT
trap 'exit 130' INT TERM

rm -rf "$checkout"
mkdir -p "$checkout"
(cd "$root" && git ls-files -z --cached --others --exclude-standard | tar -c --null -T - 2>/dev/null) | tar -x -C "$checkout"
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
declare -A ports
for key in AIRFLOW_API_PORT MAILPIT_UI_PORT MAILPIT_SMTP_PORT POSTGRES_HOST_PORT MARIADB_HOST_PORT FLOWER_PORT; do
    ports[$key]=$(free_port)
done
{
    sed -E '/^(AIRFLOW_UID|AIRFLOW_API_PORT|MAILPIT_UI_PORT|MAILPIT_SMTP_PORT|POSTGRES_HOST_PORT|MARIADB_HOST_PORT|FLOWER_PORT)=/d' \
        "$root/.env.example"
    echo "AIRFLOW_UID=$airflow_uid"
    for key in "${!ports[@]}"; do echo "$key=${ports[$key]}"; done
} >"$checkout/.env"
# The containers run as $airflow_uid (group 0) and write into the mounted tree (dbt's manifest).
if [[ $(id -u) -eq 0 ]]; then chown -R "$airflow_uid:0" "$checkout"; else podman unshare chown -R "$airflow_uid:0" "$checkout"; fi
chmod -R g+rwX "$checkout"
log "project $project in $checkout; host ports: api ${ports[AIRFLOW_API_PORT]}, mail ${ports[MAILPIT_UI_PORT]}, postgres ${ports[POSTGRES_HOST_PORT]}"

show_logs() {
    log "last lines of $1:"
    podman logs --tail 40 "$(container "$1")" 2>&1 | sed 's/^/    | /' || true
}

# Healthy: the compose healthcheck passes, run by us (podman 4.3 without systemd never runs it).
wait_healthy() {
    local svc=$1 ctr deadline=$(($(date +%s) + BOOT_TIMEOUT))
    ctr=$(container "$svc")
    [[ -n $ctr ]] || die "$svc: no container"
    until podman healthcheck run "$ctr" >/dev/null 2>&1; do
        if [[ $(podman inspect --format '{{.State.Status}}' "$ctr") == exited ]]; then
            show_logs "$svc"
            die "$svc exited"
        fi
        if (($(date +%s) > deadline)); then
            show_logs "$svc"
            die "$svc not healthy after ${BOOT_TIMEOUT}s"
        fi
        sleep 3
    done
}

wait_done() {
    local svc=$1 ctr code
    ctr=$(container "$svc")
    [[ -n $ctr ]] || die "$svc: no container"
    code=$(timeout "$BOOT_TIMEOUT" podman wait "$ctr" || echo timeout)
    if [[ $code != 0 ]]; then
        show_logs "$svc"
        die "$svc ended with $code"
    fi
}

boot0=$(date +%s)
for stage in "${BOOT_STAGES[@]}"; do
    log "starting: $stage"
    # podman 4.3 + podman-compose: `up` on depends_on fails ("not found in input list") and ignores
    # conditions, so each stage is started without its dependencies, which are up by now.
    # shellcheck disable=SC2086
    compose up -d --no-deps $stage >"$work/up.log" 2>&1 || {
        tail -20 "$work/up.log"
        die "podman-compose up $stage failed"
    }
    for svc in $stage; do
        if [[ " $ONE_SHOTS " == *" $svc "* ]]; then wait_done "$svc"; else wait_healthy "$svc"; fi
        log "    $svc: $([[ " $ONE_SHOTS " == *" $svc "* ]] && echo "exited 0" || echo healthy)"
    done
done
boot_s=$(($(date +%s) - boot0))
log "booted in ${boot_s}s (load average: $(cut -d' ' -f1-3 /proc/loadavg))"

# ---------------------------------------------------------------------------- 5. the cycle
worker=$(container airflow-worker)
log "one cycle through Airflow (CeleryExecutor), from inside the worker: $cycle_driver"
c0=$(date +%s)
set +e
podman exec -w /opt/airflow/project "$worker" python "$cycle_driver" 2>&1 | tee "$work/cycle.log" | sed -u 's/^/    /'
cycle_rc=${PIPESTATUS[0]}
set -e
cycle_s=$(($(date +%s) - c0))
result=$(tail -1 "$work/cycle.log")
if [[ $cycle_rc -ne 0 ]]; then
    for svc in airflow-scheduler airflow-worker; do show_logs "$svc"; done
    die "the cycle did not succeed ($cycle_driver exited $cycle_rc)"
fi

# ---------------------------------------------------------------------------- 6. checks
log "warehouse rows (PostgreSQL database warehouse, read in the postgres container):"
pg=$(container postgres)
wrong=""
for pair in $WAREHOUSE_ROWS; do
    table=${pair%=*} want=${pair#*=}
    rows=$(podman exec "$pg" psql -U postgres -d warehouse -Atc "select count(*) from $table" 2>/dev/null || echo missing)
    printf '    %-40s %8s%s\n' "$table" "$rows" "$([[ $rows == "$want" ]] || echo "  (expected $want)")"
    [[ $rows == "$want" ]] || wrong="$wrong $table"
done
[[ -z $wrong ]] || die "wrong row counts in:$wrong"

log "the alert e-mail in the mail sink (http://127.0.0.1:${ports[MAILPIT_UI_PORT]}/api/v1/messages):"
mail=""
deadline=$(($(date +%s) + MAIL_TIMEOUT))
while [[ -z $mail ]] && (($(date +%s) < deadline)); do
    mail=$(curl -fsS "http://127.0.0.1:${ports[MAILPIT_UI_PORT]}/api/v1/messages" 2>/dev/null |
        SUBJECT="$ALERT_SUBJECT" python3 -c '
import json, os, sys
for m in json.load(sys.stdin)["messages"]:
    if os.environ["SUBJECT"] in m["Subject"]:
        print(", ".join(a["Address"] for a in m["To"]), "|", m["Subject"])
        break' || true)
    [[ -n $mail ]] || sleep 3
done
[[ -n $mail ]] || die "no e-mail with \"$ALERT_SUBJECT\" within ${MAIL_TIMEOUT}s"
log "    to ${mail%% | *}: ${mail#* | }"

# ---------------------------------------------------------------------------- summary
airflow_cycle_s=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["cycle_s"])' "$result")
log "OK: boot ${boot_s}s; cycle ${airflow_cycle_s}s (tick triggered -> every dbt DAG done; ${cycle_s}s with the provoked alert); image build ${build_s}s; load average $(cut -d' ' -f1-3 /proc/loadavg)"
exit 0
}
