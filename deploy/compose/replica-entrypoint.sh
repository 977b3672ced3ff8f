#!/bin/sh
# The replica of compose.yaml: the first time, a physical copy of the primary made with
# pg_basebackup -R (which writes standby.signal and primary_conninfo), then PostgreSQL as a hot
# standby applying WAL REPLICA_DELAY_MS late. As deploy/local's start_replica does.
set -eu
: "${PGDATA:=/var/lib/postgresql/data}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  until pg_isready -q -h primary -p 5432 -U postgres; do sleep 1; done
  rm -rf "${PGDATA:?}"/*
  pg_basebackup -h primary -p 5432 -U postgres -D "$PGDATA" -R -X stream -c fast
  chmod 700 "$PGDATA"
fi
# A standby needs at least the primary's max_connections and max_wal_senders (compose.yaml).
exec postgres -c hot_standby=on -c hot_standby_feedback=on -c max_connections=300 -c max_wal_senders=10 \
  -c "recovery_min_apply_delay=${REPLICA_DELAY_MS:-0}ms"
