#!/usr/bin/env bash
# bash check_error_ids.sh ROOT
# Fails unless the error ids are written once and documented: every id of
# include/loom/error_ids.hpp is in the table of docs/08-errors.md (in
# backquotes), every id of that table is in the header, and no source in src/ or
# include/ spells an id as a string literal instead of using loom::error_id.
set -euo pipefail
root=$1
cd "$root"
header=include/loom/error_ids.hpp
table=docs/08-errors.md

ids=$(grep -oE '= "loom\.[a-z_]+\.[a-z0-9_]+";' "$header" | sed -E 's/= "(.*)";/\1/' | sort)
documented=$(grep -oE '^\| `loom\.[a-z_]+\.[a-z0-9_]+`' "$table" | tr -d '|` ' | sort -u)
failed=0
for id in $(comm -23 <(echo "$ids") <(echo "$documented")); do
  echo "$table lacks $id, which $header defines" >&2
  failed=1
done
for id in $(comm -13 <(echo "$ids") <(echo "$documented")); do
  echo "$table lists $id, which $header does not define" >&2
  failed=1
done
# A literal id anywhere but the header (comments aside), bare or as "[id] ...".
if grep -rnE '["[]loom\.[a-z_]+\.[a-z0-9_]+' src include --include='*.[ch]pp' \
     | grep -v "^$header:" | grep -vE '^[^:]*:[0-9]+: *//'; then
  echo "the lines above spell an error id instead of using loom::error_id" >&2
  failed=1
fi
((failed == 0)) || exit 1
echo "all $(wc -w <<<"$ids") error ids of $header are in $table and no other, and src/ uses their constants"
