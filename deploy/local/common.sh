# shellcheck shell=bash disable=SC2034 # the settings are used by the scripts that source this file
# Common settings and helpers for deploy/local/{kafka,clickhouse,services}.sh.
# Sourced, never run. Every value can be overridden from the environment.

# Resolve paths from this file, so the scripts work from any working directory.
LOCAL_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$LOCAL_DIR/../.." && pwd)"

KAFKA_PORT="${KAFKA_PORT:-19092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-19093}"
CLICKHOUSE_PORT="${CLICKHOUSE_PORT:-19000}"
CLICKHOUSE_HTTP_PORT="${CLICKHOUSE_HTTP_PORT:-18123}"

# All state (configs, data, logs, pid files) lives here; /.run/ is git-ignored.
WXPAYD_SERVICES_DIR="${WXPAYD_SERVICES_DIR:-$REPO_ROOT/.run/services}"
[[ $WXPAYD_SERVICES_DIR == /* ]] || WXPAYD_SERVICES_DIR="$PWD/$WXPAYD_SERVICES_DIR"

# How long start waits for a service to answer, and stop for it to exit, in seconds.
WXPAYD_START_TIMEOUT="${WXPAYD_START_TIMEOUT:-90}"
WXPAYD_STOP_TIMEOUT="${WXPAYD_STOP_TIMEOUT:-30}"

KAFKA_POM="$LOCAL_DIR/kafka/pom.xml"
# The pinned version is read from the pom so it is written down in one place only.
KAFKA_VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$KAFKA_POM" | head -n 1)"
# Jars are cached outside the clone so a fresh clone on the same machine reuses them.
KAFKA_LIBS_DIR="${KAFKA_LIBS_DIR:-${XDG_CACHE_HOME:-${HOME:?HOME is not set}/.cache}/wxpayd/kafka-$KAFKA_VERSION/libs}"
[[ $KAFKA_LIBS_DIR == /* ]] || KAFKA_LIBS_DIR="$PWD/$KAFKA_LIBS_DIR"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"
KAFKA_DIR="$WXPAYD_SERVICES_DIR/kafka"
CLICKHOUSE_DIR="$WXPAYD_SERVICES_DIR/clickhouse"

log() { printf '[%s] %s\n' "${LOG_PREFIX:-local}" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Run a command as root: directly when we are root, through sudo otherwise.
as_root() {
  if [[ $EUID -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "need root (or sudo) to run: $*"
  fi
}

APT_UPDATED=0
# apt_install PKG...: apt-get update (once per script run), then install; the output of a
# failing apt-get is shown, a successful one stays quiet.
apt_install() {
  local out
  out="$(mktemp)"
  if [[ $APT_UPDATED -eq 0 ]]; then
    log "apt-get update"
    if ! as_root env DEBIAN_FRONTEND=noninteractive \
      apt-get -o DPkg::Lock::Timeout=600 update -q >"$out" 2>&1; then
      cat "$out" >&2
      rm -f "$out"
      die "apt-get update failed"
    fi
    APT_UPDATED=1
  fi
  log "apt-get install $*"
  if ! as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "$@" >"$out" 2>&1; then
    tail -n 40 "$out" >&2
    rm -f "$out"
    die "apt-get install $* failed"
  fi
  rm -f "$out"
}

# port_open PORT: true when something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# pid_alive PIDFILE MARKER: print the pid and succeed when the pid file names a live
# process whose command line contains MARKER (so a recycled pid is not mistaken for ours).
pid_alive() {
  local pidfile=$1 marker=$2 pid
  [[ -s $pidfile ]] || return 1
  pid="$(<"$pidfile")"
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [[ -r /proc/$pid/cmdline ]] || return 1
  # zombies keep their cmdline readable but are gone for our purposes
  [[ "$(awk '/^State:/ {print $2}' "/proc/$pid/status" 2>/dev/null)" != Z ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$marker" || return 1
  printf '%s\n' "$pid"
}

# stop_pid PIDFILE MARKER NAME: SIGTERM, wait up to WXPAYD_STOP_TIMEOUT, then SIGKILL.
stop_pid() {
  local pidfile=$1 marker=$2 name=$3 pid waited=0
  if ! pid="$(pid_alive "$pidfile" "$marker")"; then
    rm -f "$pidfile"
    log "$name is not running"
    return 0
  fi
  log "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  while [[ -d /proc/$pid ]] && pid_alive "$pidfile" "$marker" >/dev/null; do
    if ((waited >= WXPAYD_STOP_TIMEOUT * 2)); then
      log "$name did not exit within ${WXPAYD_STOP_TIMEOUT}s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
      break
    fi
    sleep 0.5
    waited=$((waited + 1))
  done
  rm -f "$pidfile"
  log "$name stopped"
}

# with_lock DIR CMD...: serialise start/stop of one service between concurrent callers.
with_lock() {
  local dir=$1
  shift
  mkdir -p "$dir"
  (
    flock -w 600 9 || die "timed out waiting for the lock $dir/.lock"
    "$@"
  ) 9>"$dir/.lock"
}

# mark_logs FILE...: append a start marker, so a failure shows only this start's lines.
mark_logs() {
  local f stamp
  stamp="$(date -Is)"
  for f in "$@"; do
    printf '===== %s start (deploy/local) =====\n' "$stamp" >>"$f"
  done
}

# show_log_tail FILE...: for failure messages, the last 40 lines of each file written
# since the last start marker.
show_log_tail() {
  local f
  for f in "$@"; do
    [[ -s $f ]] || continue
    printf '\n----- %s (last 40 lines since this start) -----\n' "$f" >&2
    awk '/^===== .* start \(deploy\/local\) =====$/ { n = 0; next }
         { line[n++] = $0 }
         END { if (n == 0) print "(nothing)"; for (i = (n > 40 ? n - 40 : 0); i < n; i++) print line[i] }' "$f" >&2
  done
}

# usage: the calling script's header comment (line 2 up to its first line that
# is not a comment), then exit 2.
usage() {
  sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[-1]}" >&2
  exit 2
}

# logs [-f]: the last 100 lines of $SERVER_LOG, or follow it.
logs() {
  [[ -f $SERVER_LOG ]] || die "no log yet at $SERVER_LOG"
  if [[ ${1:-} == -f ]]; then
    tail -n 100 -F "$SERVER_LOG"
  else
    tail -n 100 "$SERVER_LOG"
  fi
}

check_port_var() {
  local name=$1 value=$2
  if ! [[ $value =~ ^[0-9]+$ ]] || ((value < 1 || value > 65535)); then
    die "$name must be a TCP port, got '$value'"
  fi
}
