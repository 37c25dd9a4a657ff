# Shared by the shell benchmarks (bench/*.sh): daemons of their own under a
# work dir, removed with their VMs on exit; timing; medians. Source it.

work=$(mktemp -d /tmp/avm-bench.XXXXXX)
daemon_pids=()
bench_cleanup() {
  for pid in "${daemon_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${daemon_pids[@]}"; do while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done; done
  rm -rf "$work"
}
trap bench_cleanup EXIT

# start_daemon DIR BIN_DIR IMAGE_DIR [AGENTVMD FLAGS...]: an agentvmd with
# isolated networking (the benchmarks run in the host's namespace and never
# touch its links or nftables), its socket DIR/api.sock.
start_daemon() {
  local dir=$1 bin=$2 images
  images=$(realpath "$3")  # agentvmd wants absolute paths
  shift 3
  mkdir -p "$dir"
  "$bin/agentvmd" --socket "$dir/api.sock" --state-dir "$dir/state" --run-dir "$dir/run" \
    --image-dir "$images" --default-network isolated --log-level warn "$@" >"$dir/agentvmd.log" 2>&1 &
  daemon_pids+=($!)
  for _ in $(seq 100); do [[ -S $dir/api.sock ]] && return 0; sleep 0.1; done
  echo "bench: agentvmd did not start; its log:" >&2
  tail -20 "$dir/agentvmd.log" >&2
  return 1
}

# cli NAME ARGS...: `agentvm ARGS` against the daemon started in $work/NAME
# ($bin is the script's BIN_DIR).
cli() { AGENTVM_SOCKET=$work/$1/api.sock "$bin/agentvm" "${@:2}"; }

# build_goldens NAME...: one restore on each daemon, which builds its golden
# snapshot (a cold boot and a save), untimed.
build_goldens() {
  local name
  for name in "$@"; do cli "$name" release "$(cli "$name" create --boot restore)" >/dev/null; done
}

# boot_seconds NAME KIND: seconds from `create --boot KIND` to agent-ready on
# daemon NAME; the VM is released after.
boot_seconds() {
  local start=$EPOCHREALTIME id
  id=$(cli "$1" create --boot "$2")
  echo "$start $EPOCHREALTIME" | awk '{printf "%.4f", $2 - $1}'
  cli "$1" release "$id" >/dev/null
}

# seconds CMD...: the wall time of CMD (its stdout dropped), in seconds.
seconds() {
  local start=$EPOCHREALTIME
  "$@" >/dev/null
  echo "$start $EPOCHREALTIME" | awk '{printf "%.4f", $2 - $1}'
}

# median: of the numbers on stdin (space or newline separated).
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

load_average() { cut -d' ' -f1-3 /proc/loadavg; }
