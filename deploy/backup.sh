#!/usr/bin/env bash
# A consistent backup of one ftplat installation, taken while it serves.
#
#   deploy/backup.sh DEST
#
# Reads the installation's configuration from the environment, as the
# services do (source /etc/ftplat/ftplat.env and secrets.env first, or the
# env file of deploy/dev/services.sh): FT_DATABASE_URL, FT_STORE_BACKEND,
# FT_STORE_DIR. DEST must not exist or be empty. It gets:
#
#   DEST/db.dump      pg_dump --format=custom of the whole database: one
#                     snapshot (pg_dump reads in one REPEATABLE READ
#                     transaction), so concurrent writes are either all in
#                     or all out
#   DEST/store/       every blob of the local store (sha256/ab/cdef...)
#   DEST/SHA256SUMS   "<sha256>  sha256/ab/cdef..." per blob, checked here
#                     after the copy and again by restore.sh
#   DEST/BACKUP       what was backed up: time, schema version, counts
#
# Order is what makes it consistent: the dump first, then the blobs. A row
# naming a blob is written only after the blob is committed to the store, and
# blobs are never changed or removed, so every blob a dumped row names is in
# the store when the copy starts. Blobs written after the dump are copied too
# and are simply unreferenced after a restore.
#
# Not in a backup: Redis (motion only: the scheduler rebuilds it from
# PostgreSQL, docs/architecture.md), base model folders registered by path
# (back those up with the host), a worker's scratch folder.
#
# An S3 store (FT_STORE_BACKEND=s3) is not copied here: after this script's
# dump, copy the bucket prefix with the object store's own tools (or rely on
# its versioning/replication); the same order argument holds.
#
# FT_BACKUP_SNAPSHOT, when set, is passed to pg_dump --snapshot: the dump
# then sees exactly the snapshot another session exported with
# pg_export_snapshot() (the backup test compares against that session).
set -euo pipefail

dest=${1:-}
[ -n "$dest" ] || { echo "usage: $0 DEST" >&2; exit 2; }
: "${FT_DATABASE_URL:?backup.sh: FT_DATABASE_URL is not set (source the env file of the installation)}"
backend=${FT_STORE_BACKEND:-local}
for tool in pg_dump psql sha256sum; do
  command -v "$tool" >/dev/null || { echo "backup.sh: $tool not found (apt-get install postgresql-client coreutils)" >&2; exit 1; }
done
if [ -e "$dest" ] && [ -n "$(ls -A "$dest")" ]; then
  echo "backup.sh: \"$dest\" is not empty; give a new folder" >&2
  exit 2
fi
mkdir -p "$dest/store"
dest=$(cd "$dest" && pwd)
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)

# 1. The database.
snap=()
[ -n "${FT_BACKUP_SNAPSHOT:-}" ] && snap=(--snapshot="$FT_BACKUP_SNAPSHOT")
pg_dump --format=custom --no-owner --no-privileges "${snap[@]}" \
  --file="$dest/db.dump" --dbname="$FT_DATABASE_URL"
schema=$(psql -X -A -t -v ON_ERROR_STOP=1 --dbname="$FT_DATABASE_URL" \
  -c "SELECT coalesce(max(version), 0) FROM schema_migrations")

# 2. The blobs (after the dump: see the top of this file).
case "$backend" in
local)
  store=${FT_STORE_DIR:?backup.sh: FT_STORE_DIR is not set}
  [ -d "$store/sha256" ] || { echo "backup.sh: \"$store\" holds no store (no sha256/ folder)" >&2; exit 1; }
  # Complete blobs only: a write in progress lives in tmp/ until its rename.
  (cd "$store" && find sha256 -type f -regextype posix-extended \
     -regex 'sha256/[0-9a-f]{2}/[0-9a-f]{62}' | LC_ALL=C sort) > "$dest/blobs.list"
  (cd "$store" && xargs --no-run-if-empty -d '\n' -a "$dest/blobs.list" \
     cp --parents --preserve=timestamps -t "$dest/store" --)
  sed -E 's|^sha256/([0-9a-f]{2})/([0-9a-f]{62})$|\1\2  &|' "$dest/blobs.list" > "$dest/SHA256SUMS"
  rm "$dest/blobs.list"
  if [ -s "$dest/SHA256SUMS" ] && ! (cd "$dest/store" && sha256sum --check --quiet --strict ../SHA256SUMS); then
    echo "backup.sh: a blob does not match its name (listed above): the store is damaged" >&2
    exit 1
  fi
  ;;
s3)
  echo "backup.sh: FT_STORE_BACKEND=s3: the database is in $dest/db.dump; now copy the" \
       "bucket prefix with the object store's tools (docs/deploy.md, Backup and restore)" >&2
  : > "$dest/SHA256SUMS"
  ;;
*) echo "backup.sh: unknown FT_STORE_BACKEND \"$backend\"" >&2; exit 2 ;;
esac

blobs=$(wc -l < "$dest/SHA256SUMS")
bytes=$(du -sb "$dest/store" | cut -f1)
cat > "$dest/BACKUP" <<EOF
format: ftplat-backup-1
started: $started
finished: $(date -u +%Y-%m-%dT%H:%M:%SZ)
schema_version: $schema
store_backend: $backend
blobs: $blobs
store_bytes: $bytes
pg_dump: $(pg_dump --version)
EOF
sync -f "$dest/BACKUP"
echo "backup.sh: $dest: schema $schema, $blobs blobs ($bytes bytes)"
