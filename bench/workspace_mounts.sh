#!/bin/bash
# Mounts vs the VM's own disk, in one run (docs/workspaces.md): VM start with
# one mount vs without (both cold boots: a VM with mounts cannot restore),
# sequential write and read throughput, and small-file metadata (2,000
# files: create, `find`, `stat`) on a virtiofs mount and on the guest's disk.
# Usage: bench/workspace_mounts.sh [BUILD_DIR]   (root; tiny image)
set -euo pipefail
build=$(realpath "${1:-${AGENTVM_BUILD_DIR:-build}}")
work=$(mktemp -d /tmp/avm-mount-bench.XXXXXX)
mkdir -p "$work/roots/repo" "$work/state" "$work/run"
printf 'mount_roots:\n  - %s\n' "$work/roots" > "$work/agentvmd.yaml"
sock=$work/agentvm.sock
"$build/bin/agentvmd" --socket "$sock" --state-dir "$work/state" --run-dir "$work/run" \
  --image-dir "$build/images" --accel tcg --no-golden-snapshots --default-network isolated \
  --config "$work/agentvmd.yaml" 2> "$work/agentvmd.log" &
daemon=$!
cleanup() {
  kill "$daemon" 2>/dev/null || true
  wait "$daemon" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
avm() { "$build/bin/agentvm" --socket "$sock" "$@"; }
for _ in $(seq 300); do [ -S "$sock" ] && break; sleep 0.1; done
[ -S "$sock" ] || { cat "$work/agentvmd.log"; exit 1; }

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
for i in $(seq $runs); do
  start=$(now); plain=$(avm create --boot cold); echo "start without mount: $(elapsed "$start") s"
  start=$(now); mounted=$(avm create --boot cold -v "$work/roots/repo:/workspace"); echo "start with one mount: $(elapsed "$start") s"
  if [ "$i" -lt "$runs" ]; then avm rm -f "$plain" "$mounted" > /dev/null; fi
done

id=$mounted
for where in /root/disk /workspace/bench; do
  avm exec "$id" -- mkdir -p "$where" > /dev/null
  write=$(timed "$id" "dd if=/dev/zero of=$where/big bs=1M count=128 conv=fsync 2>/dev/null")
  avm exec "$id" -- sh -c "sync; echo 3 > /proc/sys/vm/drop_caches" > /dev/null
  read=$(timed "$id" "cat $where/big > /dev/null")
  files=$(timed "$id" "cd $where && for d in \$(seq 20); do mkdir d\$d; for f in \$(seq 100); do echo x > d\$d/f\$f; done; done")
  avm exec "$id" -- sh -c "sync; echo 3 > /proc/sys/vm/drop_caches" > /dev/null
  find=$(timed "$id" "find $where -type f | wc -l")
  stat=$(timed "$id" "find $where -type f -exec stat -c %s {} + | wc -l")
  printf '%-16s write 128 MiB %6.2f s (%5.1f MiB/s)  read %6.2f s (%5.1f MiB/s)  create 2000 files %6.2f s  find (cold) %5.2f s  stat all %5.2f s\n' \
    "$where" "$write" "$(echo "128 / $write" | bc -l)" "$read" "$(echo "128 / $read" | bc -l)" "$files" "$find" "$stat"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
avm rm -f "$plain" "$mounted" > /dev/null
