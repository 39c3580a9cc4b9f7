#!/bin/sh
# docker-compose.yml's temporal-schema job (temporalio/admin-tools): creates Temporal's two databases on PostgreSQL
# and applies the schema of this admin-tools' server version. Safe to run again: an existing database is kept,
# and only newer schema versions are applied (the same steps as Temporal's own compose examples).
# The suites' cluster (sandbox/cluster.ts) runs this very script with the tool and schema scripts/ensure-temporal-server
# builds: SQL_TOOL and SCHEMA_DIR say where they are.
set -eu
: "${POSTGRES_SEEDS:?}" "${POSTGRES_USER:?}"
# No default password, and no empty one: docker-compose.yml passes POSTGRES_PASSWORD here as SQL_PASSWORD.
: "${SQL_PASSWORD:?is not set: the PostgreSQL password (POSTGRES_PASSWORD in docker-compose.yml)}"
port=${DB_PORT:-5432}
tool=${SQL_TOOL:-temporal-sql-tool}
schema=${SCHEMA_DIR:-/etc/temporal/schema/postgresql/v12}

if command -v nc >/dev/null 2>&1; then
  echo "waiting for PostgreSQL at $POSTGRES_SEEDS:$port"
  nc -z -w 10 "$POSTGRES_SEEDS" "$port"
fi

sql() { "$tool" --plugin postgres12 --ep "$POSTGRES_SEEDS" -u "$POSTGRES_USER" -p "$port" "$@"; }
sql --db temporal create
sql --db temporal setup-schema -v 0.0
sql --db temporal update-schema -d "$schema/temporal/versioned"
sql --db temporal_visibility create
sql --db temporal_visibility setup-schema -v 0.0
sql --db temporal_visibility update-schema -d "$schema/visibility/versioned"
echo "PostgreSQL schema is set up"
