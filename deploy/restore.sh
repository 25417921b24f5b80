#!/usr/bin/env bash
# Restore a backup made by deploy/backup.sh into a fresh installation.
#
#   deploy/restore.sh BACKUP
#
# The target is named by the environment, as for the services:
# FT_DATABASE_URL must name an existing, empty database (create it first:
# `createdb -O ftplat ftplat`), FT_STORE_DIR a store folder with no blobs yet
# (FT_STORE_BACKEND=local; for s3, copy the bucket back with the object
# store's tools, then run this with FT_STORE_BACKEND=s3 for the database).
#
# Steps, in this order so that no restored row names a missing blob:
#   1. check every blob of the backup against its name (SHA256SUMS);
#   2. copy the blobs into the store (each through a temporary name, then
#      renamed, as the store itself writes), and flush them to disk;
#   3. pg_restore the dump in one transaction (all or nothing).
# Then start the services; if this release is newer than the backup's
# schema_version (BACKUP), ft-migrate up brings the schema forward first.
set -euo pipefail

src=${1:-}
[ -n "$src" ] || { echo "usage: $0 BACKUP" >&2; exit 2; }
[ -f "$src/BACKUP" ] && [ -f "$src/db.dump" ] && [ -f "$src/SHA256SUMS" ] \
  || { echo "restore.sh: \"$src\" is not a backup made by backup.sh (no BACKUP, db.dump, SHA256SUMS)" >&2; exit 2; }
src=$(cd "$src" && pwd)
: "${FT_DATABASE_URL:?restore.sh: FT_DATABASE_URL is not set}"
backend=${FT_STORE_BACKEND:-local}
for tool in pg_restore psql sha256sum; do
  command -v "$tool" >/dev/null || { echo "restore.sh: $tool not found (apt-get install postgresql-client)" >&2; exit 1; }
done

tables=$(psql -X -A -t -v ON_ERROR_STOP=1 --dbname="$FT_DATABASE_URL" \
  -c "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
[ "$tables" = 0 ] || { echo "restore.sh: the target database already has $tables tables; restore into an empty one" >&2; exit 2; }

# 1. The backup's blobs are what their names say.
if [ -s "$src/SHA256SUMS" ] && ! (cd "$src/store" && sha256sum --check --quiet --strict ../SHA256SUMS); then
  echo "restore.sh: a blob in the backup does not match its name (listed above); not restoring" >&2
  exit 1
fi

# 2. The blobs.
if [ "$backend" = local ]; then
  store=${FT_STORE_DIR:?restore.sh: FT_STORE_DIR is not set}
  mkdir -p "$store/sha256" "$store/tmp"
  if [ -n "$(find "$store/sha256" -type f -print -quit)" ]; then
    echo "restore.sh: \"$store\" already holds blobs; restore into an empty store" >&2
    exit 2
  fi
  while read -r _ rel; do
    mkdir -p "$store/$(dirname "$rel")"
    cp --preserve=timestamps "$src/store/$rel" "$store/tmp/restore.part"
    mv "$store/tmp/restore.part" "$store/$rel"
  done < "$src/SHA256SUMS"
  sync -f "$store/sha256"
fi

# 3. The database, all or nothing.
pg_restore --exit-on-error --single-transaction --no-owner --no-privileges \
  --dbname="$FT_DATABASE_URL" "$src/db.dump"
echo "restore.sh: restored $(wc -l < "$src/SHA256SUMS") blobs and the database at schema" \
     "$(sed -n 's/^schema_version: //p' "$src/BACKUP") from $src"
