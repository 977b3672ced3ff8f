#!/bin/sh
# Runs once, when the primary's data folder is created (/docker-entrypoint-initdb.d of the
# postgres image): lets the replica stream WAL, as deploy/local's pg_hba.conf does.
set -eu
echo "host replication all all trust" >> "$PGDATA/pg_hba.conf"
