#!/bin/bash
# Mounts vs the VM's own disk, in one run (docs/workspaces.md): VM start with
# one mount vs without, cold-booted and restored from the golden snapshot
# (a VM with a mount restores with its virtiofs device hot-plugged; a build
# from before that cold-boots it and says so in restore_error, printed),
# sequential write and read throughput, and small-file metadata (2,000
# files: create, `find`, `stat`) on the guest's disk and on a virtiofs mount
# under each virtiofs_cache mode asked for (a daemon each, one after the
# other, in one run).
# Usage: bench/workspace_mounts.sh [BUILD_DIR]   (root; tiny image)
#   RUNS=N start rounds (default 3), each: cold and restored, without and
#   with a mount, interleaved; CACHES="auto always" modes (default auto);
#   STARTS_ONLY=1 skips the throughput part; IMAGE_DIR (default
#   BUILD_DIR/images) to compare another build's binaries on the same images.
set -euo pipefail
build=$(realpath "${1:-${AGENTVM_BUILD_DIR:-build}}")
work=$(mktemp -d /tmp/avm-mount-bench.XXXXXX)
mkdir -p "$work/roots" "$work/state" "$work/run"
# Read-write sources must be on a nosuid file system (docs/workspaces.md).
mount -t tmpfs -o nosuid,nodev,size=1g,mode=0755 tmpfs "$work/roots"
mkdir -p "$work/roots/repo"
sock=$work/agentvm.sock
daemon=
stop_daemon() {
  if [ -n "$daemon" ]; then kill "$daemon" 2>/dev/null || true; wait "$daemon" 2>/dev/null || true; fi
  daemon=
}
cleanup() {
  stop_daemon
  umount "$work/roots" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
# Starts agentvmd with virtiofs_cache MODE and waits for its socket.
start_daemon() {
  printf 'mount_roots:\n  - %s\nvirtiofs_cache: %s\n' "$work/roots" "$1" > "$work/agentvmd.yaml"
  rm -f "$sock"
  "$build/bin/agentvmd" --socket "$sock" --state-dir "$work/state" --run-dir "$work/run" \
    --image-dir "${IMAGE_DIR:-$build/images}" --accel tcg --default-network isolated \
    --config "$work/agentvmd.yaml" 2>> "$work/agentvmd.log" &
  daemon=$!
  for _ in $(seq 300); do [ -S "$sock" ] && return; sleep 0.1; done
  cat "$work/agentvmd.log"
  exit 1
}
avm() { "$build/bin/agentvm" --socket "$sock" "$@"; }

now() { date +%s.%N; }
elapsed() { echo "$(now) - $1" | bc; }
# Runs SCRIPT in the VM and prints its wall time in seconds.
timed() {
  local id=$1 script=$2 start
  start=$(now)
  avm exec "$id" -- sh -c "$script" > /dev/null
  elapsed "$start"
}

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
runs=${RUNS:-3}
caches=${CACHES:-auto}
first=${caches%% *}
start_daemon "$first"
# Untimed: builds the golden snapshot the restores start from.
avm rm -f "$(avm create --boot restore)" > /dev/null
# Times `agentvm create --boot BOOT ARGS...` and prints LABEL, the time and
# how the VM really started (its boot, and restore_error if any); the VM's
# id goes to the file $work/last.
start_vm() {
  local label=$1 boot=$2 start id info
  shift 2
  start=$(now)
  id=$(avm create --boot "$boot" "$@")
  local took
  took=$(elapsed "$start")
  info=$(avm inspect "$id")
  echo "$label: $took s (boot $(echo "$info" | jq -r .boot)$(echo "$info" | jq -r '.restore_error // "" | if . == "" then "" else ", restore_error: " + . end'))"
  echo "$id" > "$work/last"
}
for i in $(seq "$runs"); do
  for boot in cold restore; do
    start_vm "$boot, without mount" "$boot"; avm rm -f "$(cat "$work/last")" > /dev/null
    start_vm "$boot, with one mount" "$boot" -v "$work/roots/repo:/workspace"
    mounted=$(cat "$work/last")
    if [ "$i" -lt "$runs" ] || [ "$boot" = cold ]; then avm rm -f "$mounted" > /dev/null; fi
  done
done
if [ -n "${STARTS_ONLY:-}" ]; then
  echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
  avm rm -f "$mounted" > /dev/null
  exit 0
fi
plain=$(avm create --boot cold)

# The same work on WHERE in VM ID, one line of results labelled LABEL.
measure() {
  local id=$1 where=$2 label=$3 write read files find stat
  avm exec "$id" -- mkdir -p "$where" > /dev/null
  write=$(timed "$id" "dd if=/dev/zero of=$where/big bs=1M count=128 conv=fsync 2>/dev/null")
  avm exec "$id" -- sh -c "sync; echo 3 > /proc/sys/vm/drop_caches" > /dev/null
  read=$(timed "$id" "cat $where/big > /dev/null")
  files=$(timed "$id" "cd $where && for d in \$(seq 20); do mkdir d\$d; for f in \$(seq 100); do echo x > d\$d/f\$f; done; done")
  avm exec "$id" -- sh -c "sync; echo 3 > /proc/sys/vm/drop_caches" > /dev/null
  find=$(timed "$id" "find $where -type f | wc -l")
  stat=$(timed "$id" "find $where -type f -exec stat -c %s {} + | wc -l")
  printf '%-22s write 128 MiB %6.2f s (%5.1f MiB/s)  read %6.2f s (%5.1f MiB/s)  create 2000 files %6.2f s  find (cold) %5.2f s  stat all %5.2f s\n' \
    "$label" "$write" "$(echo "128 / $write" | bc -l)" "$read" "$(echo "128 / $read" | bc -l)" "$files" "$find" "$stat"
}

measure "$mounted" /root/disk "disk"
for mode in $caches; do
  if [ "$mode" != "$first" ]; then
    avm rm -f "$mounted" > /dev/null
    stop_daemon
    start_daemon "$mode"
    mounted=$(avm create --boot cold -v "$work/roots/repo:/workspace")
  fi
  rm -rf "$work/roots/repo/bench"
  measure "$mounted" /workspace/bench "mount, cache=$mode"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
avm rm -f "$mounted" > /dev/null
