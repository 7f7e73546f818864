#!/bin/sh
# Starts PostgreSQL, applies the official image's POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB
# conventions, then prints the readiness marker Keystone waits for.
set -e
# Extra server options come as the command, like the official image's `postgres -c name=value`.
if [ "${1:-}" = postgres ]; then shift; fi
postgres -D "$PGDATA" -c unix_socket_directories=/run/postgresql "$@" &
pid=$!
until pg_isready -q -h /run/postgresql; do sleep 0.02; done
user=${POSTGRES_USER:-postgres}
db=${POSTGRES_DB:-$user}
if [ "$user" != postgres ]; then
  psql -q -h /run/postgresql -U postgres -c "CREATE ROLE \"$user\" SUPERUSER LOGIN" postgres
fi
if [ -n "${POSTGRES_PASSWORD:-}" ]; then
  psql -q -h /run/postgresql -U postgres -v pw="$POSTGRES_PASSWORD" postgres <<SQL
ALTER ROLE "$user" PASSWORD :'pw';
SQL
fi
if [ "$db" != postgres ]; then
  psql -q -h /run/postgresql -U postgres -c "CREATE DATABASE \"$db\" OWNER \"$user\"" postgres
fi
echo "keystone: postgres ready"
wait "$pid"
