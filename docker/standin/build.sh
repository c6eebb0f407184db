#!/usr/bin/env bash
# Builds the STAND-IN base images that docker-compose.yml and the Dockerfile name, on a machine
# that reaches no image registry (only the apt and PyPI mirrors): see README.md beside this file.
# Each image is built only when podman does not have it yet (an official image pulled under the
# same name is used as it is), so a second run builds nothing.
#
#   docker/standin/build.sh            (scripts/compose_smoke.sh runs it)
#
# Stand-in  ->  for the official image (what differs)
#   postgres:16                       Debian 12's PostgreSQL 15 (pg-entry.sh: initdb, initdb.d/*.sh)
#   mariadb:10.11                     Debian 12's MariaDB 10.11 (maria-entry.sh, healthcheck.sh)
#   redis:7.2-bookworm                Debian 12's Redis 7.0
#   axllent/mailpit:v1.29             a small Python SMTP sink with mailpit's message API (mailpit)
#   apache/airflow:3.3.2-python3.11   Debian 12's Python 3.11, a venv at /home/airflow/.local, uv,
#                                     a small /entrypoint (db wait, migrate, dispatch); no Airflow:
#                                     the project's Dockerfile installs it
# Every one is labelled io.meltano-dbt-orchestrator.standin-for=<the official image>, and
# ...standin-for-inputs=<hash of its Containerfile and the files it copies>: a change rebuilds it.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
work=${COMPOSE_SMOKE_DIR:-$(cd "$here/../.." && pwd)/var/compose-smoke}
export CONTAINERS_CONF
CONTAINERS_CONF=$(realpath "${CONTAINERS_CONF:-$here/containers.conf}") # absolute: podman's helpers run elsewhere
base=localhost/deb12-sub:latest
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
label=io.meltano-dbt-orchestrator.standin-for

say() { printf '%s\n' "stand-ins: $*"; }

# Packages of the one base filesystem every stand-in starts from. curl: the Airflow healthchecks;
# postgresql (pg_isready), mariadb-server, redis-server (redis-cli): the databases; python3 (the
# mail sink) and python3-venv, dumb-init, procps: the Airflow base.
packages="postgresql mariadb-server redis-server python3 python3-venv dumb-init procps curl ca-certificates"

build_base() {
    if podman image exists "$base"; then
        say "$base present"
        return
    fi
    command -v debootstrap >/dev/null || {
        echo "stand-ins: debootstrap is missing: apt-get install debootstrap" >&2
        exit 1
    }
    local root="$work/rootfs"
    rm -rf "$root"
    mkdir -p "$work"
    say "debootstrap bookworm from $mirror into $root (a few minutes)"
    debootstrap --variant=minbase bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
        tail -20 "$work/debootstrap.log" >&2
        exit 1
    }
    cp /etc/resolv.conf "$root/etc/resolv.conf"
    # No service starts inside the chroot while packages install.
    printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
    chmod +x "$root/usr/sbin/policy-rc.d"
    say "installing $packages"
    chroot "$root" /bin/sh -c "apt-get update -q && DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends $packages && apt-get clean \
        && rm -rf /var/lib/apt/lists/* /var/lib/postgresql/15/main /var/lib/mysql/*" \
        >"$work/chroot-install.log" 2>&1 || {
        tail -20 "$work/chroot-install.log" >&2
        exit 1
    }
    rm -f "$root/usr/sbin/policy-rc.d"
    tar -C "$root" -c . | podman import -q - "$base" >/dev/null
    rm -rf "$root"
    say "$base imported"
}

# build_one CONTAINERFILE TAG: the stand-in for TAG, unless podman has an official image of that
# name, or a stand-in built from the same Containerfile and files (the inputs label says which).
build_one() {
    local file=$1 tag=$2 ctx inputs have
    ctx=$(mktemp -d)
    cp -r "$here/." "$ctx/"
    cp "$here/airflow-entrypoint" "$ctx/entrypoint"
    cp /etc/ssl/certs/ca-certificates.crt "$ctx/ca-certificates.crt"
    # shellcheck disable=SC2046 # the sources of the COPY lines, one word each
    inputs=$(cd "$ctx" && cat "$file" $(awk '/^COPY /{for (i = 2; i < NF; i++) print $i}' "$file") | sha256sum | cut -c1-16)
    if podman image exists "$tag"; then
        have=$(podman image inspect --format "{{ index .Labels \"$label\" }}" "$tag" 2>/dev/null || true)
        if [[ -z $have || $have == "<no value>" ]]; then
            say "$tag present (official image)"
            rm -rf "$ctx"
            return
        fi
        have=$(podman image inspect --format "{{ index .Labels \"$label-inputs\" }}" "$tag" 2>/dev/null || true)
        if [[ $have == "$inputs" ]]; then
            say "$tag present (stand-in: $(standin_of "$tag"))"
            rm -rf "$ctx"
            return
        fi
    fi
    say "building $tag (stand-in: $(standin_of "$tag")) from $file"
    podman build -q --label "$label=$tag" --label "$label-inputs=$inputs" -f "$ctx/$file" -t "$tag" "$ctx" >/dev/null
    rm -rf "$ctx"
}

# What each stand-in is, in a few words (the table at the top of this file).
standin_of() {
    case $1 in
    postgres:*) echo "Debian 12's PostgreSQL 15" ;;
    mariadb:*) echo "Debian 12's MariaDB 10.11" ;;
    redis:*) echo "Debian 12's Redis 7.0" ;;
    axllent/mailpit:*) echo "a Python SMTP sink with mailpit's message API" ;;
    apache/airflow:*) echo "Debian 12's Python 3.11 + venv + uv, no Airflow" ;;
    esac
}

command -v podman >/dev/null || {
    echo "stand-ins: podman is missing: apt-get install podman runc" >&2
    exit 1
}
build_base
build_one pg.Containerfile postgres:16
build_one maria.Containerfile mariadb:10.11
build_one redis.Containerfile redis:7.2-bookworm
build_one mailpit.Containerfile axllent/mailpit:v1.29
build_one airflow.Containerfile apache/airflow:3.3.2-python3.11
# Stand-ins that a rebuild replaced, untagged now (only ours: by the label).
podman image prune -f --filter "label=$label" >/dev/null 2>&1 || true
