#!/usr/bin/env bash
# Start a PostgreSQL server on loopback for the distributed tests, and print its URL.
#
#   bash .ci/postgres.sh                      # installs (Debian/Ubuntu) and starts it
#   export KWS_TEST_POSTGRES_URL=$(bash .ci/postgres.sh | tail -n 1)
#
# Safe to run again: an installed package, a running server, the user and the database are
# each left as they are. The last line printed is the SQLAlchemy URL and nothing else.
# Settings: KWS_PG_PORT (default 5432, used when the cluster is created here), KWS_PG_USER / KWS_PG_PASSWORD / KWS_PG_DB (default kws).
set -euo pipefail

PORT="${KWS_PG_PORT:-5432}"
USER_NAME="${KWS_PG_USER:-kws}"
PASSWORD="${KWS_PG_PASSWORD:-kws}"
DB_NAME="${KWS_PG_DB:-kws}"

log() { echo "postgres.sh: $*" >&2; }

as_postgres() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    sudo -n -u postgres "$@"
  fi
}

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi
}

# Only the URL goes to stdout: everything `setup` runs (pg_ctlcluster says "Removed stale pid
# file.", apt, psql) writes to stderr, so a caller can capture stdout as the URL. No extra file
# descriptor is opened for this: the server daemon would inherit it and hold the caller's pipe
# open, so `$(bash .ci/postgres.sh)` would never return.
setup() {
  if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    log "installing postgresql"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq postgresql >/dev/null
  fi

  VERSION="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"
  CLUSTER=main  # the cluster Debian's package creates; made here when an image removed it
  if ! pg_lsclusters -h 2>/dev/null | awk '{print $1, $2}' | grep -qx "$VERSION $CLUSTER"; then
    log "creating cluster $VERSION/$CLUSTER on port $PORT"
    as_root pg_createcluster "$VERSION" "$CLUSTER" --port "$PORT" >/dev/null
  fi

  STATUS="$(pg_lsclusters -h | awk -v v="$VERSION" -v c="$CLUSTER" '$1 == v && $2 == c {print $4}')"
  PORT="$(pg_lsclusters -h | awk -v v="$VERSION" -v c="$CLUSTER" '$1 == v && $2 == c {print $3}')"
  if [ "$STATUS" != "online" ]; then
    log "starting cluster $VERSION/$CLUSTER on port $PORT"
    as_root pg_ctlcluster "$VERSION" "$CLUSTER" start
  fi

  for _ in $(seq 1 30); do
    if as_postgres psql -p "$PORT" -tAc "SELECT 1" >/dev/null 2>&1; then break; fi
    sleep 1
  done

  psql_pg() { as_postgres psql -p "$PORT" -v ON_ERROR_STOP=1 -tA "$@"; }

  if [ "$(psql_pg -c "SELECT 1 FROM pg_roles WHERE rolname = '$USER_NAME'")" != 1 ]; then
    log "creating user $USER_NAME"
    psql_pg -c "CREATE ROLE \"$USER_NAME\" LOGIN PASSWORD '$PASSWORD'" >/dev/null
  fi
  if [ "$(psql_pg -c "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")" != 1 ]; then
    log "creating database $DB_NAME"
    psql_pg -c "CREATE DATABASE \"$DB_NAME\" OWNER \"$USER_NAME\"" >/dev/null
  fi

  URL="postgresql+psycopg2://$USER_NAME:$PASSWORD@127.0.0.1:$PORT/$DB_NAME"
  PGPASSWORD="$PASSWORD" psql -h 127.0.0.1 -p "$PORT" -U "$USER_NAME" -d "$DB_NAME" -tAc "SELECT 1" \
    >/dev/null
  log "ready: export KWS_TEST_POSTGRES_URL=$URL"
}

setup >&2
echo "$URL"
