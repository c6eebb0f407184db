#!/usr/bin/env bash
# Local services of the production profile: PostgreSQL, MariaDB, Redis.
#   scripts/services.sh start    start whichever is down (plain processes, no Docker)
#   scripts/services.sh status   say which are up
set -uo pipefail

pg_up()      { pg_isready -q -h 127.0.0.1 -p 5432; }
mariadb_up() { mariadb-admin -uroot -h127.0.0.1 --connect-timeout=2 ping >/dev/null 2>&1; }
redis_up()   { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }

start_pg()      { pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start; }
start_mariadb() { start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd; }
start_redis()   { redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
                    --dir /var/lib/redis --logfile /var/log/redis/ci.log; }

wait_for() {  # wait_for NAME CHECK
  for _ in $(seq 1 30); do "$2" && return 0; sleep 1; done
  echo "services: $1 did not come up" >&2; return 1
}

case "${1:-status}" in
  start)
    for svc in pg mariadb redis; do
      if "${svc}_up"; then echo "services: $svc up"; continue; fi
      echo "services: starting $svc"
      # A service that cannot start here is reported; the tests that need it skip, saying why.
      "start_${svc}" || echo "services: could not start $svc"
      wait_for "$svc" "${svc}_up" || true
    done ;;
  status)
    for svc in pg mariadb redis; do
      if "${svc}_up"; then echo "$svc: up"; else echo "$svc: down"; fi
    done ;;
  *) echo "usage: $0 start|status" >&2; exit 2 ;;
esac
