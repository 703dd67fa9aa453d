#!/bin/sh
# The databases of kfp-mlops: run once, on an empty data directory, by the postgres image's
# entrypoint (/docker-entrypoint-initdb.d) as the superuser over the local socket. The tests
# run this same file against their own PostgreSQL server (tests/conftest.py).
#
# Two databases, each owned by its own login role, and nobody else may connect to them:
#   mlflow  the MLflow server's backend store (role mlflow, MLFLOW_DB_PASSWORD)
#   optuna  the study storage of the optimize workers (role optuna, OPTUNA_DB_PASSWORD)
# The optuna password is handed to every step pod that tunes (Secret
# optuna-storage-credentials in the runs namespace); with a role of its own, a step pod
# that has it still cannot read or change the model registry.
#
# The passwords come from the environment (Secret postgres-credentials) and are read by
# psql itself (\getenv), so they are never on a command line.
set -eu
: "${MLFLOW_DB_PASSWORD:?is empty: set it in Secret postgres-credentials}"
: "${OPTUNA_DB_PASSWORD:?is empty: set it in Secret postgres-credentials}"

psql --no-psqlrc -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname postgres <<'SQL'
\getenv mlflow_password MLFLOW_DB_PASSWORD
\getenv optuna_password OPTUNA_DB_PASSWORD
CREATE ROLE mlflow LOGIN PASSWORD :'mlflow_password';
CREATE DATABASE mlflow OWNER mlflow;
REVOKE ALL ON DATABASE mlflow FROM PUBLIC;
CREATE ROLE optuna LOGIN PASSWORD :'optuna_password';
CREATE DATABASE optuna OWNER optuna;
REVOKE ALL ON DATABASE optuna FROM PUBLIC;
SQL
echo "kfp-mlops: created databases mlflow and optuna, each with its own role"
