#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests: its own cluster in a temporary folder, on
# 127.0.0.1 at a free port, trust authentication, no fsync. Needs Debian's `postgresql`
# (scripts/setup.sh installs it when run as root).
#   eval "$(bash scripts/test_postgres.sh start)"   # exports VOICEAGENT_TEST_POSTGRES_URL, _PGDATA
#   bash scripts/test_postgres.sh stop "$VOICEAGENT_TEST_POSTGRES_PGDATA"
set -euo pipefail

bin_dir() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  if [ -z "$dir" ] || [ ! -x "$dir/pg_ctl" ]; then
    echo "no PostgreSQL server binaries (apt-get install postgresql)" >&2
    return 1
  fi
  echo "$dir"
}

as_owner() {  # PostgreSQL refuses to run as root: the cluster belongs to the postgres user.
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "${1:-}" in
  start)
    bin=$(bin_dir)
    data=$(mktemp -d /tmp/voiceagent-pg.XXXXXX)
    [ "$(id -u)" = 0 ] && chown postgres: "$data"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    as_owner "$bin/initdb" -D "$data/db" -A trust -U voiceagent --no-sync -E UTF8 >"$data/initdb.log" 2>&1 \
      || { cat "$data/initdb.log" >&2; exit 1; }
    as_owner "$bin/pg_ctl" -D "$data/db" -l "$data/server.log" -w -t 30 start \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $data -c fsync=off -c full_page_writes=off -c max_connections=200" \
      >/dev/null || { cat "$data/server.log" >&2; exit 1; }
    echo "export VOICEAGENT_TEST_POSTGRES_URL=postgresql://voiceagent@127.0.0.1:$port/postgres"
    echo "export VOICEAGENT_TEST_POSTGRES_PGDATA=$data"
    ;;
  stop)
    data=${2:?usage: test_postgres.sh stop PGDATA}
    bin=$(bin_dir)
    as_owner "$bin/pg_ctl" -D "$data/db" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$data"
    ;;
  *)
    echo "usage: $0 start | stop PGDATA" >&2
    exit 2
    ;;
esac
