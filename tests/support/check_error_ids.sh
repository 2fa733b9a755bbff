#!/usr/bin/env bash
# bash check_error_ids.sh ROOT
# Fails unless every error id the library uses appears, in backquotes, in
# docs/08-errors.md. The ids are found in src/ and include/loom/: strings
# "loom.x.y" (thrown, compared, or written into an error text as [loom.x.y]),
# and the definition errors, which validation builds from a reason
# (fail_definition("cycle", ...), fail_file("file", ...), read_integer(...,
# "bad_retry", ...)).
set -euo pipefail
root=$1
table=$root/docs/08-errors.md
cd "$root"

ids=$( {
  grep -rhoE '["[]loom\.[a-z_]+\.[a-z0-9_]+' src include | cut -c2-
  grep -rhoE 'fail(_definition|_file)?\("[a-z_]+"' src | sed -E 's/.*"([a-z_]+)"/loom.definition.\1/'
  grep -rhoE ', "bad_[a-z_]+", ' src | sed -E 's/.*"([a-z_]+)".*/loom.definition.\1/'
} | sort -u )

missing=0
for id in $ids; do
  if ! grep -qF "\`$id\`" "$table"; then
    echo "docs/08-errors.md lacks $id (used in: $(grep -rlF "$id" src include | tr '\n' ' '))" >&2
    missing=$((missing + 1))
  fi
done
count=$(wc -w <<<"$ids")
if ((missing > 0)); then
  echo "$missing of $count error ids are not in docs/08-errors.md" >&2
  exit 1
fi
echo "all $count error ids used in src/ and include/ are in docs/08-errors.md"
