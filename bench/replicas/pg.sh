# bench/replicas/pg.sh: a PostgreSQL server for the replica benches, from the
# distribution's binaries (/usr/lib/postgresql/*/bin, as tests/it/common/pg.rs finds
# them), in a directory of its own on a free port, listening on 127.0.0.1 only.
# Sourced by bench/replicas/run:
#   pg_start DIR      initdb + pg_ctl start; sets PG_BIN, PG_DATA, PG_PORT, PG_ADMIN (URL)
#   pg_url NAME       the URL of database NAME
#   pg_fresh NAME     drops and creates database NAME
#   pg_cpu_ns         CPU the server's processes have used so far, in ns (live ones from
#                     /proc/PID/schedstat, plus the exited backends the postmaster reaped)
#   pg_stop
# PostgreSQL refuses to run as root: as root it runs as nobody, in a directory handed
# to it. BENCH_PG_SYNC (off) is synchronous_commit: "off" is what SQLite's WAL with
# synchronous=NORMAL gives (a commit survives a crash of the process, not of the
# machine), "on" waits for the WAL's fsync at every commit.

pg_as() {
  if [ "$(id -u)" = 0 ]; then setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$@"; else "$@"; fi
}

pg_start() {
  local dir=$1
  PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  if [ -z "$PG_BIN" ] || [ ! -x "$PG_BIN/initdb" ]; then
    if [ "$(id -u)" = 0 ]; then
      echo "installing Debian package postgresql (missing)" >&2
      apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
      PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    else
      echo "no PostgreSQL under /usr/lib/postgresql (apt-get install postgresql)" >&2; return 1
    fi
  fi
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown nobody:nogroup "$dir"
  PG_DATA="$dir/data"
  PG_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  (cd "$dir" && pg_as "$PG_BIN/initdb" --auth=trust --username=lookout --encoding=UTF8 -D "$PG_DATA" > "$dir/initdb.log")
  (cd "$dir" && pg_as "$PG_BIN/pg_ctl" -w -D "$PG_DATA" -l "$dir/log" \
    -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c max_connections=100 -c synchronous_commit=${BENCH_PG_SYNC:-off}" \
    start > /dev/null)
  PG_ADMIN=$(pg_url postgres)
}

pg_url() { printf 'postgres://lookout@127.0.0.1:%s/%s?sslmode=disable' "$PG_PORT" "$1"; }

pg_sql() { PGOPTIONS="-c client_min_messages=warning" "$PG_BIN/psql" -q -X -v ON_ERROR_STOP=1 "$(pg_url postgres)" -c "$1" > /dev/null; }

pg_fresh() {
  pg_sql "DROP DATABASE IF EXISTS $1 WITH (FORCE)"
  pg_sql "CREATE DATABASE $1"
}

pg_cpu_ns() {
  local master
  master=$(head -1 "$PG_DATA/postmaster.pid")
  python3 - "$master" <<'PY'
import os, sys
master = sys.argv[1]
tick = os.sysconf("SC_CLK_TCK")
total = 0
# Reaped backends: the postmaster's cutime + cstime (clock ticks).
with open(f"/proc/{master}/stat") as f:
    fields = f.read().rsplit(")", 1)[1].split()
total += (int(fields[13]) + int(fields[14])) * 10**9 // tick
for pid in os.listdir("/proc"):
    if not pid.isdigit():
        continue
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
        ppid = stat.rsplit(")", 1)[1].split()[1]
        if pid != master and ppid != master:
            continue
        with open(f"/proc/{pid}/schedstat") as f:
            total += int(f.read().split()[0])
    except (FileNotFoundError, ProcessLookupError):
        pass
print(total)
PY
}

pg_stop() {
  [ -n "${PG_DATA:-}" ] && [ -f "$PG_DATA/postmaster.pid" ] || return 0
  (cd / && pg_as "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast stop > /dev/null 2>&1) || true
}

# pg_sample DB OUT: in the background, every 50 ms, one line per backend of DB other
# than its own: "state|wait" (wait "CPU" when it waits for nothing), until pg_sample_stop.
pg_sample() {
  printf "SELECT state || '|' || coalesce(wait_event_type || ':' || wait_event, 'CPU') FROM pg_stat_activity WHERE datname = '%s' AND pid <> pg_backend_pid();\n\\\\watch 0.05\n" "$1" \
    | "$PG_BIN/psql" -q -X -At "$(pg_url postgres)" > "$2" 2>/dev/null &
  PG_SAMPLER=$!
}
pg_sample_stop() { kill "$PG_SAMPLER" 2>/dev/null || true; wait "$PG_SAMPLER" 2>/dev/null || true; }
