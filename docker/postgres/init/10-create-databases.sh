#!/usr/bin/env bash
# Creates the databases of the dev environment next to Airflow's metadata database ($POSTGRES_DB).
# The postgres image runs this once, on the first start of an empty data volume
# (/docker-entrypoint-initdb.d); `docker compose down -v` starts over.
#
#   warehouse     the production profile's warehouse (Meltano loads raw_*, dbt builds the rest)
#   meltano       Meltano's system database (state, runs): MELTANO_DATABASE_URI
#   demo_sources  the CRM and marketing source schemas, written by the demo-seed service
#   alerting      the alert outbox: ALERTING_OUTBOX_URL
#
# The list comes from $POSTGRES_EXTRA_DATABASES (docker-compose.yml), so the compose file is the
# one place that names them. Tables, schemas and the read-only demo_reader role are created by
# the programs that own them (demo_data's writers, Meltano, dbt, the alerting outbox).
set -euo pipefail

for db in ${POSTGRES_EXTRA_DATABASES:-}; do
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" --set db="$db" <<'SQL'
SELECT format('CREATE DATABASE %I', :'db')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db')\gexec
SQL
  echo "init: database $db ready"
done
