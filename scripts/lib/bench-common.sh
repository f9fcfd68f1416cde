# Shared by scripts/bench-cluster and scripts/bench-registry: the release build, a temp dir,
# processes started on loopback and stopped by PID on exit, Sluice and redis-server starters.
# Sourced after setup.sh, not run.

BENCH_TOOLS="$(sluice_root)/scripts/lib/bench_tools.py"

# Installs what the benchmarks need and builds the release binary; sets BIN. BENCH_BIN=PATH
# runs a release binary built beforehand instead (the section in BENCHMARKS.md says so).
bench_build() {
  sluice_apt_install "${SLUICE_APT_PACKAGES[@]}" wrk hey
  if [ -n "${BENCH_BIN:-}" ]; then
    BIN="$BENCH_BIN"
    echo "using $BIN (BENCH_BIN), not building" >&2
    return 0
  fi
  sluice_require_swift
  echo "building sluice (release)..." >&2
  swift build -c release --product sluice >/tmp/sluice-bench-build.log 2>&1 || { tail -30 /tmp/sluice-bench-build.log >&2; return 1; }
  BIN="$(swift build -c release --show-bin-path)/sluice"
}

# A temp dir (WORK) and the list of PIDs (BENCH_PIDS) that the exit trap stops, then the dir goes.
bench_workdir() {
  WORK="$(mktemp -d "/tmp/$1.XXXXXX")"
  BENCH_PIDS=()
  trap bench_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

bench_cleanup() {
  local pid
  for pid in "${BENCH_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for _ in $(seq 1 50); do
    local alive=0
    for pid in "${BENCH_PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for pid in "${BENCH_PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${WORK:-}" ] && rm -rf "$WORK"
}

# Drops a PID from the list (a process that was killed on purpose).
bench_forget_pid() {
  local keep=() pid
  for pid in "${BENCH_PIDS[@]}"; do if [ "$pid" != "$1" ]; then keep+=("$pid"); fi; done
  BENCH_PIDS=("${keep[@]}")
}

bench_wait_redis() {  # port
  for _ in $(seq 1 100); do [ "$(redis-cli -p "$1" PING 2>/dev/null)" = "PONG" ] && return 0; sleep 0.05; done
  echo "error: redis-server on port $1 did not answer" >&2
  return 1
}

# A standalone redis-server on 127.0.0.1:PORT, files in DIR; sets REDIS_PID.
bench_start_redis() {  # port dir
  mkdir -p "$2"
  redis-server --bind 127.0.0.1 --port "$1" --save "" --appendonly no --dir "$2" \
    --maxmemory-policy noeviction --logfile "$2/redis.log" &
  REDIS_PID=$!
  BENCH_PIDS+=("$REDIS_PID")
  bench_wait_redis "$1"
}

# `sluice serve` on PORT with CONFIG, log to LOG; waits for /readyz to say Redis is up; sets SLUICE_PID.
# The environment's SLUICE_REDIS_* would override the file's topology, so they are cleared.
bench_start_sluice() {  # config port log
  env -u SLUICE_REDIS_URL -u SLUICE_REDIS_CLUSTER_NODES -u SLUICE_REDIS_SENTINEL_NODES -u SLUICE_REDIS_SENTINEL_MASTER \
    -u SLUICE_ADMIN_TOKENS -u SLUICE_ADMIN_PORT -u SLUICE_LOG_LEVEL \
    SLUICE_KEY_SECRET=bench "$BIN" serve --config "$1" --port "$2" >"$3" 2>&1 &
  SLUICE_PID=$!
  BENCH_PIDS+=("$SLUICE_PID")
  for _ in $(seq 1 400); do
    curl -sf "http://127.0.0.1:$2/readyz" 2>/dev/null | grep -q '"redis":"up"' && return 0
    kill -0 "$SLUICE_PID" 2>/dev/null || break
    sleep 0.05
  done
  echo "error: sluice on port $2 did not become ready; its log:" >&2
  tail -20 "$3" >&2
  return 1
}

bench_rss_kb() { awk '/^VmRSS/{print $2}' "/proc/$1/status"; }

# Lines of a Sluice log at warning or above (JSON or text format), at most 20, for the report.
bench_log_problems() {  # log
  grep -E '"level": ?"(warning|error|critical)"|\b(warning|error|critical)\b' "$1" | head -20 || true
}

# The section header every benchmark appends to BENCHMARKS.md.
bench_section_header() {  # title command
  echo
  echo "## $(date -u '+%Y-%m-%d %H:%M UTC') — $1 at $(git -C "$(sluice_root)" rev-parse --short HEAD)"
  echo
  echo "Command: \`$2\`"
  if [ -n "${BENCH_BIN:-}" ]; then
    echo
    echo "Binary: \`BENCH_BIN=$BENCH_BIN\`, a release build made beforehand, not built by the script."
  fi
  echo
  echo "Machine: $(nproc) cores, $(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo), $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r); Redis $(redis-server --version | awk '{print $3}' | cut -d= -f2), load on the same machine."
}

# utime + stime of whole processes (every thread), in clock ticks, as JSON: NAME=PID, or
# NAME=PID:tree for PID and every process below it (nginx's master and workers). See
# bench_tools.py cpu-sample.
bench_cpu_sample() {  # NAME=PID[:tree]...
  python3 "$BENCH_TOOLS" cpu-sample "$@"
}

# A sentence for a section when the sources built differ from the commit named in its header
# (other sessions editing the tree), else nothing.
bench_tree_note() {
  local changed
  changed="$(git -C "$(sluice_root)" status --porcelain -- Sources Package.swift Package.resolved 2>/dev/null | awk '{print $2}' | paste -sd, - | sed 's/,/, /g')"
  if [ -n "$changed" ] && [ -z "${BENCH_BIN:-}" ]; then
    echo
    echo "The tree built had uncommitted changes against that commit in: $changed."
  fi
}

# The path of one of Sluice's Lua scripts (prelude.lua, decide.lua, registry.lua...), wherever
# under Sources it lives.
bench_lua_path() {  # name
  local path
  path="$(find "$(sluice_root)/Sources" -name "$1" -type f | sort | head -1)"
  if [ -z "$path" ]; then
    echo "error: no $1 under Sources" >&2
    return 1
  fi
  echo "$path"
}
