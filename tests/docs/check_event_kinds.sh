#!/usr/bin/env bash
# bash check_event_kinds.sh ROOT
# Fails unless the history's event kinds are written once and documented: every
# kind in include/loom/events.hpp appears, in backquotes, in the History section
# of docs/05-operations.md, and no source in src/ spells a kind as a string
# literal instead of using its constant.
set -euo pipefail
root=$1
cd "$root"
header=include/loom/events.hpp
doc=docs/05-operations.md

kinds=$(grep -oE '= "[a-z_.]+";' "$header" | sed -E 's/= "(.*)";/\1/')
history=$(awk '/^## History/{on=1; next} /^## /{on=0} on' "$doc")
failed=0
for kind in $kinds; do
  if ! grep -qF "\`$kind\`" <<<"$history"; then
    echo "$doc (History) lacks \`$kind\`, which $header defines" >&2
    failed=1
  fi
  if [[ $kind == *.* ]] && grep -rnF "\"$kind\"" src | grep -v '^[^:]*:[0-9]*: *//'; then
    echo "the lines above spell \"$kind\" instead of using loom::event" >&2
    failed=1
  fi
done
((failed == 0)) || exit 1
echo "all $(wc -w <<<"$kinds") event kinds of $header are documented, and src/ uses their constants"
