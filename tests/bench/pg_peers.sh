#!/usr/bin/env bash
# Loom beside its peers on one PostgreSQL cluster, in one run (issue 11): starts a
# private PostgreSQL 15 (tests/support/pg_server.sh: unix socket only, fsync on),
# measures its single-row INSERT transaction rate with pgbench, runs
# loom_pg_bench (1, 2 and 3 worker processes) and DBOS Transact (tests/bench/dbos)
# against it, prints one table with the ratios and stops the server (also on
# failure or Ctrl-C). Not part of .ci/run: it takes several minutes and its
# figures are for reading, not for passing.
#
#   bash tests/bench/pg_peers.sh [--build DIR] [--repeat N] [--dir DIR] [--verbose]
#                                [--loom-args "ARGS"]
#
# --build: the build tree holding tests/bench/loom_pg_bench (default build-bench:
#   cmake -S . -B build-bench -G Ninja -DCMAKE_BUILD_TYPE=Release -DLOOM_WITH_POSTGRES=ON
#   cmake --build build-bench --target loom_pg_bench)
# --repeat: rounds (3, below); --dir: the server's directory
# (a fresh /tmp/loom-peers-PID; removed at the end). Run as root (the server runs
# as the postgres account), with Node 20+ and npm for DBOS (npm ci on first use).
# --verbose: loom_pg_bench prints each measurement's store calls and counters;
# --loom-args: more options for loom_pg_bench (e.g. "--max-claimed 100").
#
# Rounds (--repeat, 3): each runs pgbench, loom_pg_bench once and DBOS once, so a
# drift of the machine spreads over all three; a last pgbench sample ends the run,
# and the table gives medians over the rounds. pgbench: one INSERT of one row per
# transaction into a table with a bigserial key, 4 clients (2 threads) for 10 s,
# then 1 client for 5 s (a chain commits one step after another, so the
# one-client rate is its ceiling).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=$root/build-bench
repeat=3
dir=/tmp/loom-peers-$$
verbose=()
loom_args=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --build) build=$(cd "$2" && pwd); shift 2 ;;
    --repeat) repeat=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --verbose) verbose=(--verbose); shift ;;
    --loom-args) read -r -a loom_args <<<"$2"; shift 2 ;;
    *) echo "usage: pg_peers.sh [--build DIR] [--repeat N] [--dir DIR] [--verbose] [--loom-args \"ARGS\"]" >&2
       exit 2 ;;
  esac
done

bench=$build/tests/bench/loom_pg_bench
server=$root/tests/support/pg_server.sh
dbos=$root/tests/bench/dbos
if [[ ! -x $bench ]]; then
  echo "no $bench: build it with" >&2
  echo "  cmake -S $root -B $build -G Ninja -DCMAKE_BUILD_TYPE=Release -DLOOM_WITH_POSTGRES=ON" >&2
  echo "  cmake --build $build -j2 --target loom_pg_bench" >&2
  exit 1
fi
command -v pgbench >/dev/null || { echo "no pgbench (Debian: postgresql-client-15)" >&2; exit 1; }
command -v node >/dev/null || { echo "no node (Node 20+ for DBOS)" >&2; exit 1; }
if [[ ! -d $dbos/node_modules/@dbos-inc/dbos-sdk ]]; then
  (cd "$dbos" && npm ci --no-audit --no-fund)
fi

work=$(mktemp -d)
cleanup() {
  bash "$server" stop "$dir" >/dev/null 2>&1 || true
  rm -f "$dir.lock"   # pg_server.sh's lock file, which stop leaves
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== $(date -u '+%Y-%m-%d %H:%M UTC') on $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)"
# Which sources the build was made from (a work tree may hold uncommitted changes).
source=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$build/CMakeCache.txt" 2>/dev/null || true)
if git -C "${source:-/nonexistent}" rev-parse --git-dir >/dev/null 2>&1; then
  version="$(git -C "$source" rev-parse --short HEAD)$(git -C "$source" diff --quiet HEAD -- src include || echo ' with src or include modified')"
else
  version="not a git work tree"
fi
echo "== Loom built in $build from $source ($version)"
url=$(bash "$server" start "$dir")
node_url="postgresql://postgres@localhost/loom?host=$dir"
echo "== PostgreSQL 15 in $dir: $url"

# ---- pgbench, Loom and DBOS, round by round ------------------------------------------------
# The machine's speed drifts (a shared VM, its disk above all): rounds alternate
# the three, so that a drift spreads over all of them, and every figure below is
# a median over the rounds.
psql -q -X -v ON_ERROR_STOP=1 "$url" -c "CREATE TABLE bench_insert (id bigserial PRIMARY KEY, v text NOT NULL)"
printf "INSERT INTO bench_insert (v) VALUES ('x');\n" >"$work/insert.sql"
results=$work/results
insert_rate() {   # clients threads seconds
  pgbench -n -h "$dir" -U postgres -f "$work/insert.sql" -c "$1" -j "$2" -T "$3" loom 2>/dev/null |
    awk '/^tps/ { printf "%.0f\n", $3 }'
}
pgbench_sample() {
  local four one
  four=$(insert_rate 4 2 10)
  one=$(insert_rate 1 1 5)
  echo "insert 4 $four" >>"$results"
  echo "insert 1 $one" >>"$results"
  echo "== pgbench, single-row INSERT: 4 clients, 10 s: $four tx/s; 1 client, 5 s: $one tx/s" \
       "(load average $(cut -d' ' -f1-3 /proc/loadavg))"
}
for ((round = 1; round <= repeat; round++)); do
  echo
  echo "======== round $round of $repeat, $(date -u '+%H:%M:%S UTC')"
  pgbench_sample
  echo
  "$bench" "$url" --repeat 1 --results "$results" "${verbose[@]}" "${loom_args[@]}"
  echo
  node --no-deprecation "$dbos/dbos_bench.js" "$node_url" --repeat 1 --results "$results"
done
echo
pgbench_sample

# ---- the table ------------------------------------------------------------------------------
echo
echo "== $(date -u '+%Y-%m-%d %H:%M UTC'); load average $(cut -d' ' -f1-3 /proc/loadavg)"
awk '
  function median(k,   n, i, j, t, a) {
    n = count[k]
    for (i = 1; i <= n; i++) a[i] = vals[k, i]
    for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
    lo[k] = a[1]; hi[k] = a[n]
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  function add(k, v) { vals[k, ++count[k]] = v }
  $1 == "insert" { add("insert " $2, $3); next }
  { add($1 " " $2 " " $3, $4); add("tx " $1 " " $2 " " $3, $7) }
  END {
    label["chain"] = "chain of 2,000 steps"
    label["serial"] = "200 x 10, started one by one"
    label["burst"] = "200 x 10, started at once"
    label["queue"] = "200 x 10, DBOS queue"
    ins4 = median("insert 4"); ins1 = median("insert 1")
    printf "single-row INSERT tx/s (pgbench), median (min-max) of %d samples: 4 clients %d (%d-%d), 1 client %d (%d-%d)\n",
           count["insert 4"], ins4, lo["insert 4"], hi["insert 4"], ins1, lo["insert 1"], hi["insert 1"]
    best = 0
    split("serial burst queue", variants, " ")
    for (i = 1; i <= 3; i++) {
      d = "dbos " variants[i] " 1"
      if (count[d] && (m = median(d)) > best) { best = m; bestshape = variants[i] }
    }
    printf "\n%-28s %2s %18s %7s %18s %6s %9s %9s %8s %8s\n", "shape", "w", "Loom steps/s", "tx/step",
           "DBOS steps/s", "tx/st", "Loom/DBOS", "Loom/best", "/INSERT4", "/INSERT1"
    for (s = 0; s < 3; s++) {
      shape = s == 0 ? "chain" : s == 1 ? "serial" : "burst"
      d = "dbos " shape " 1"
      dm = count[d] ? median(d) : 0
      for (w = 1; w <= 3; w++) {
        l = "loom " shape " " w
        if (!count[l]) continue
        lm = median(l)
        peer = shape == "chain" ? dm : best
        printf "%-28s %2d %18s %7.2f %18s %6s %9s %9s %8.2f %8.2f\n", label[shape], w,
               sprintf("%d (%d-%d)", lm, lo[l], hi[l]), median("tx " l),
               dm ? sprintf("%d (%d-%d)", dm, lo[d], hi[d]) : "-", dm ? sprintf("%.2f", median("tx " d)) : "-",
               dm ? sprintf("%.1fx", lm / dm) : "-", peer ? sprintf("%.1fx", lm / peer) : "-",
               lm / ins4, lm / ins1
      }
    }
    d = "dbos queue 1"
    if (count[d])
      printf "%-28s %2s %18s %7s %18s %6.2f\n", label["queue"], "", "", "", sprintf("%d (%d-%d)", median(d), lo[d], hi[d]),
             median("tx " d)
    printf "\nMedian (min-max) over %d rounds, each running Loom and DBOS once, after a pgbench sample.\n", count["insert 4"] - 1
    printf "Loom: w worker processes; DBOS: one process. tx/step: server transactions per step.\n"
    printf "Loom/DBOS: against the DBOS run started the same way. Loom/best: against DBOS on the chain (chain rows)\n"
    printf "or the fastest DBOS 200 x 10 variant (%s). /INSERT4, /INSERT1: Loom steps/s per single-row INSERT\n", bestshape
    printf "tx/s with 4 clients, with 1 client. Goals (issue 11): Loom/best >= 5x on the chain, >= 20x on 200 x 10.\n"
  }' "$results"
