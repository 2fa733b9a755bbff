#!/usr/bin/env bash
# bash check_doc_links.sh ROOT FILE.md...
# Fails unless every relative link in the given Markdown files points at a file
# or directory that exists (relative to the linking file) and, with a #anchor,
# at a heading of that file (GitHub's anchors: lower case, punctuation dropped,
# spaces as hyphens, "-1", "-2" for repeats). Links in code blocks and code
# spans are not links; http(s) and mailto links are not checked.
set -euo pipefail
root=$1
shift

# The anchors of a Markdown file's headings, one per line.
anchors() {
  awk '
    /^```/ { fence = !fence; next }
    fence || !/^#+ / { next }
    {
      text = $0
      sub(/^#+ +/, "", text)
      sub(/ +#* *$/, "", text)
      text = tolower(text)
      gsub(/[^a-z0-9 _-]/, "", text)
      gsub(/ /, "-", text)
      if (text in seen) { seen[text]++; print text "-" seen[text] } else { seen[text] = 0; print text }
    }' "$1"
}

# "target" for every link [text](target) outside code, one per line.
links() {
  awk '
    /^```/ { fence = !fence; next }
    fence { next }
    {
      line = $0
      gsub(/`[^`]*`/, "", line)
      while (match(line, /\]\([^) ]+\)/)) {
        print substr(line, RSTART + 2, RLENGTH - 3)
        line = substr(line, RSTART + RLENGTH)
      }
    }' "$1"
}

failures=0 checked=0
for doc in "$@"; do
  dir=$(dirname "$root/$doc")
  while IFS= read -r target; do
    case $target in http://* | https://* | mailto:*) continue ;; esac
    checked=$((checked + 1))
    path=${target%%#*}
    anchor=
    [[ $target == *"#"* ]] && anchor=${target#*#}
    if [[ -z $path ]]; then
      file=$root/$doc
    else
      file=$dir/$path
    fi
    if [[ ! -e $file ]]; then
      echo "$doc: link ($target): $path does not exist" >&2
      failures=$((failures + 1))
      continue
    fi
    if [[ -n $anchor ]]; then
      if [[ ! -f $file || $file != *.md ]]; then
        echo "$doc: link ($target): an anchor needs a Markdown file" >&2
        failures=$((failures + 1))
      elif ! anchors "$file" | grep -qxF -- "$anchor"; then
        echo "$doc: link ($target): ${path:-$doc} has no heading with anchor #$anchor" >&2
        failures=$((failures + 1))
      fi
    fi
  done < <(links "$root/$doc")
done
if ((failures > 0)); then
  echo "$failures broken link(s) of $checked" >&2
  exit 1
fi
echo "$checked relative links in $# files point at existing files and headings"
