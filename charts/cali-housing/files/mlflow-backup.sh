#!/bin/sh
# Backs up MLflow's database before `mlflow db upgrade` moves its schema (which never goes back):
# pg_dump's custom format into BACKUP_DIR, named after the time and the MLflow image about to run,
# written under a temporary name and renamed when complete; keeps the newest BACKUP_KEEP dumps.
# Restore one with pg_restore (docs/upgrades.md).
set -eu

: "${MLFLOW_BACKEND_STORE_URI:?is not set (the Secret key mlflowBackendStoreUri)}"
: "${BACKUP_DIR:?is not set}"
: "${BACKUP_KEEP:?is not set}"
: "${MLFLOW_IMAGE_TAG:?is not set}"

case "$MLFLOW_BACKEND_STORE_URI" in
  postgresql://* | postgresql+*://* | postgres://*) ;;
  *)
    echo "mlflow-backup: MLFLOW_BACKEND_STORE_URI is not a PostgreSQL URI: nothing backed up, upgrade refused (set mlflow.server.upgrade.enabled=false to upgrade without a backup)" >&2
    exit 1
    ;;
esac
# pg_dump takes a libpq URI: SQLAlchemy's "+driver" part goes.
pg_uri="postgresql://${MLFLOW_BACKEND_STORE_URI#*://}"

stamp=$(date -u +%Y%m%dT%H%M%SZ)
out="$BACKUP_DIR/mlflow-$stamp-$MLFLOW_IMAGE_TAG.dump"
pg_dump --format=custom --no-owner --no-privileges --file="$out.partial" --dbname="$pg_uri"
mv "$out.partial" "$out"
echo "mlflow-backup: $out ($(wc -c <"$out") bytes)"

# Names sort by time: drop all but the newest BACKUP_KEEP (and any partial file of a failed run).
rm -f "$BACKUP_DIR"/*.partial
find "$BACKUP_DIR" -maxdepth 1 -name "mlflow-*.dump" -exec basename {} \; | sort -r | tail -n +"$((BACKUP_KEEP + 1))" | while read -r old; do
  rm -f "$BACKUP_DIR/$old"
  echo "mlflow-backup: removed $old (older than the newest $BACKUP_KEEP)"
done
