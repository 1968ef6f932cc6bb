#!/usr/bin/env bash
# Creates the login roles of the compose stack. The official postgres image runs this once, as the
# postgres OS user, when it initialises an empty data volume; POSTGRES_USER (ledger_owner) owns the
# database and runs the migrations, which GRANT ledger_app what the service needs.
#
#   ledger_app       the service's login: no superuser, no CREATEDB/CREATEROLE, NOINHERIT (as in ansible/),
#                    no schema rights here.
#   ledger_exporter  postgres_exporter's login: only the built-in pg_monitor role.
#
# Passwords come from the environment and reach SQL as psql variables (:'name'), which psql quotes as
# literals, so no password can break out of its string.
set -euo pipefail

: "${POSTGRES_USER:?}"
: "${POSTGRES_DB:?}"
: "${LEDGER_APP_DB_PASSWORD:?LEDGER_APP_DB_PASSWORD must be set for the ledger_app role}"
: "${LEDGER_EXPORTER_DB_PASSWORD:?LEDGER_EXPORTER_DB_PASSWORD must be set for the ledger_exporter role}"

psql --no-psqlrc --set=ON_ERROR_STOP=1 \
    --username="$POSTGRES_USER" --dbname="$POSTGRES_DB" \
    --set=db="$POSTGRES_DB" \
    --set=app_password="$LEDGER_APP_DB_PASSWORD" \
    --set=exporter_password="$LEDGER_EXPORTER_DB_PASSWORD" <<'SQL'
CREATE ROLE ledger_app WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT
    CONNECTION LIMIT 100 PASSWORD :'app_password';
CREATE ROLE ledger_exporter WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
    CONNECTION LIMIT 5 PASSWORD :'exporter_password';
GRANT pg_monitor TO ledger_exporter;

-- Nobody but the owner creates objects; the roles above only connect until migrations grant more.
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"db" TO ledger_app;
GRANT CONNECT ON DATABASE :"db" TO ledger_exporter;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
SQL
