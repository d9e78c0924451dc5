#!/usr/bin/env bash
# postgres.sh -- make sure a PostgreSQL server answers on 127.0.0.1:5432 for the tests.
#
# Prints the admin URL the tests should use (ACCORD_TEST_PG) on its last line.
# On this project's machines PostgreSQL already runs with trust auth; on a bare
# Debian machine (as root) it installs the server, starts the cluster and, if
# TCP logins need a password, sets one for the postgres role.
set -Eeuo pipefail
HOST=127.0.0.1 PORT=5432 DB=${ACCORD_TEST_PG_DB:-test}
PASS=${ACCORD_TEST_PG_PASSWORD:-accord-tests}
log() { echo "[postgres] $*" >&2; }

try() { PGCONNECT_TIMEOUT=3 psql "$1" -Atqc 'select 1' >/dev/null 2>&1; }

if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  [ "$(id -u)" -eq 0 ] || { log "PostgreSQL is not installed and we are not root"; exit 1; }
  log "installing postgresql"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq postgresql >/dev/null
fi
if ! pg_isready -h $HOST -p $PORT -q; then
  version=$(ls /etc/postgresql | sort -V | tail -1)
  log "starting cluster $version/main"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
  for _ in $(seq 1 60); do pg_isready -h $HOST -p $PORT -q && break; sleep 0.5; done
fi
pg_isready -h $HOST -p $PORT -q || { log "PostgreSQL does not answer on $HOST:$PORT"; exit 1; }

url="postgresql://postgres@$HOST:$PORT/$DB"
if ! try "postgresql://postgres@$HOST:$PORT/postgres"; then
  log "TCP login needs a password: setting one for role postgres"
  su postgres -c "psql -qc \"ALTER USER postgres PASSWORD '$PASS'\"" >/dev/null
  url="postgresql://postgres:$PASS@$HOST:$PORT/$DB"
  try "postgresql://postgres:$PASS@$HOST:$PORT/postgres" || { log "cannot log in as postgres"; exit 1; }
fi
admin=${url%/*}/postgres
if ! try "$url"; then
  log "creating database $DB"
  psql "$admin" -qc "CREATE DATABASE \"$DB\"" >/dev/null
fi
echo "$url"
