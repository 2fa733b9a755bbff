#!/usr/bin/env bash
# A private PostgreSQL 15 server for the tests, in one directory: data, log and
# the unix socket it listens on (no TCP). Run as root, the server runs as the
# unprivileged postgres account, which must be able to reach the directory.
#   pg_server.sh start DIR     fresh cluster in DIR, started, database "loom"
#   pg_server.sh stop DIR      stop it and remove DIR
#   pg_server.sh start-alone DIR   as start, but waits until no other ctest run
#                                  uses DIR: for tests that crash the server
# Two ctest runs in one build tree share DIR: start and stop count the ctest
# processes using the server (DIR.users/<pid>, under a lock), so the first
# starts it and the last stops it; a run that was killed is forgotten.
#   pg_server.sh restart DIR   crash-restart (pg_ctl restart -m immediate)
#   pg_server.sh down DIR      crash-stop (-m immediate), DIR kept
#   pg_server.sh up DIR        start again after down
#   pg_server.sh url DIR       the connection string the tests use
set -euo pipefail

usage() { echo "usage: pg_server.sh start|start-alone|stop|restart|down|up|url DIR" >&2; exit 2; }
[[ $# -eq 2 ]] || usage
command=$1
dir=$2
bin=${LOOM_PG_BIN:-/usr/lib/postgresql/15/bin}
data=$dir/data

as_server() {
  if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

url() { echo "host=$dir dbname=loom user=postgres"; }

# 9>&-: the server must not inherit the lock that start and stop hold.
pg_ctl() { as_server "$bin/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 30 "$@" 9>&-; }

stop_any() {
  if [[ -f $data/postmaster.pid ]]; then
    as_server "$bin/pg_ctl" -D "$data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
}

start() {
  [[ -x $bin/initdb ]] || { echo "no PostgreSQL 15 server in $bin (Debian: postgresql-15)" >&2; exit 1; }
  stop_any   # a server left behind by an interrupted run
  rm -rf "$dir"
  mkdir -p "$dir"
  if [[ $(id -u) -eq 0 ]]; then chown postgres: "$dir"; fi
  chmod 700 "$dir"
  # --no-sync: the cluster is thrown away after the tests; the server itself
  # runs with fsync on, as in production.
  as_server "$bin/initdb" -D "$data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; exit 1; }
  cat >>"$data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$dir'
fsync = on
synchronous_commit = on
max_connections = 100
shared_buffers = 32MB
log_min_messages = warning
# Crash recovery first fsyncs every file of the cluster, one by one: seconds on a
# busy disk. One syncfs() of the file system is as safe and takes a fraction.
recovery_init_sync_method = syncfs
CONF
  pg_ctl start >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
  as_server "$bin/createdb" -h "$dir" -U postgres loom
  url
}

# The ctest process (our parent) that uses the server; drops those that died.
users=$dir.users
prune_users() {
  mkdir -p "$users"
  local entry
  for entry in "$users"/*; do
    [[ -e $entry ]] || continue
    kill -0 "${entry##*/}" 2>/dev/null || rm -f "$entry"
  done
}
has_users() { compgen -G "$users/*" >/dev/null; }
locked() { exec 9>"$dir.lock"; flock 9; }

case $command in
  start)
    locked
    prune_users
    if has_users && [[ -f $data/postmaster.pid ]] && as_server "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
      touch "$users/$PPID"   # another ctest run's server: share it
      url
    else
      rm -f "$users"/*
      start
      touch "$users/$PPID"
    fi ;;
  start-alone)
    for ((waited = 0; ; waited++)); do
      locked
      prune_users
      has_users || break
      flock -u 9
      ((waited < 600)) || { echo "$dir: still used by another ctest run after 600 s" >&2; exit 1; }
      sleep 1
    done
    start
    touch "$users/$PPID" ;;
  stop)
    locked
    rm -f "$users/$PPID"
    prune_users
    if ! has_users; then stop_any; rm -rf "$dir" "$users"; fi ;;
  restart) pg_ctl -m immediate restart >/dev/null ;;
  down) as_server "$bin/pg_ctl" -D "$data" -m immediate -w stop >/dev/null ;;
  up) pg_ctl start >/dev/null ;;
  url) url ;;
  *) usage ;;
esac
